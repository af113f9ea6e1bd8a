"""Time DiffSeg's aggregate + segment at Stable Diffusion 1.x scale against one reference GEMM.

Input: 16 synthetic head-averaged self-attention layers like SD1.x (64/32/16/8 with 5/5/5/1 layers), each
the softmax of low-rank logits whose keys carry a planted region partition, so a realistic number of
segments survives. Work: aggregate to 64^4, 256 anchors, 3 iterations, upsample to 512, argmax.
Reference: one fp32 GEMM (256 x 4096) @ (4096 x 4096), the size of one anchor-vs-all-maps product.

    python benchmarks/diffseg.py [--out benchmarks/results] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from timing import median_times

from zsnb import diffseg

LAYERS: dict[int, int] = {64: 5, 32: 5, 16: 5, 8: 1}  # SD1.x self-attention layers per resolution
TARGET_S: float = 0.6  # per image, aggregate + segment


def synthetic_layers(regions: int, sharpness: float, noise: float, noise_dims: int,
                     seed: int) -> dict[str, torch.Tensor]:
    """{name: (r*r, r*r)} row-stochastic maps: softmax(sharpness * E Eᵀ), E = region one-hot + noise."""
    g = torch.Generator().manual_seed(seed)
    top = max(LAYERS)
    centres = torch.rand(regions, 2, generator=g) * top
    out = {}
    for r, count in LAYERS.items():
        coords = (torch.arange(r) + 0.5) * top / r  # pixel centres on the finest grid
        pix = torch.cartesian_prod(coords, coords)  # (r*r, 2)
        region = torch.cdist(pix, centres).argmin(1)
        for k in range(count):
            emb = torch.cat([torch.nn.functional.one_hot(region, regions).float(),
                             noise * torch.randn(r * r, noise_dims, generator=g)], 1)  # (r*r, d), low rank
            out[f"res{r}_layer{k}"] = (sharpness * emb @ emb.T).softmax(-1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tau", type=float, default=1.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    layers = synthetic_layers(regions=10, sharpness=4.0, noise=0.2, noise_dims=16, seed=args.seed)
    n = max(LAYERS) ** 2
    anchors = 16 ** 2
    a, b = torch.randn(anchors, n), torch.randn(n, n)

    def pipeline() -> torch.Tensor:
        return diffseg.segment(diffseg.aggregate(layers), kl_threshold=args.tau, num_points=16,
                               iterations=3, out_size=512)

    agg = diffseg.aggregate(layers)
    result = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "kl_threshold": args.tau,
        "segments": int(pipeline().max()) + 1,
        "aggregate_s": median_times([lambda: diffseg.aggregate(layers)], args.repeats)[0],
        "segment_s": median_times([lambda: diffseg.segment(agg, kl_threshold=args.tau)], args.repeats)[0],
        "total_s": median_times([pipeline], args.repeats)[0],
        # CPU seconds of this process (all threads): less sensitive than wall time to other jobs' load.
        "total_cpu_s": median_times([pipeline], args.repeats, time.process_time)[0],
        "gemm_s": median_times([lambda: a @ b], args.repeats)[0],
        "gemm_cpu_s": median_times([lambda: a @ b], args.repeats, time.process_time)[0],
        "target_s": TARGET_S,
    }
    result["ratio_total_to_gemm"] = result["total_s"] / result["gemm_s"]

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "diffseg.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [("aggregate", result["aggregate_s"]), ("segment", result["segment_s"]),
            ("aggregate + segment", result["total_s"]),
            (f"GEMM ({anchors}x{n})·({n}x{n}) fp32", result["gemm_s"])]
    table = ["| step | median s | x GEMM |", "|---|---|---|"]
    table += [f"| {name} | {s:.3f} | {s / result['gemm_s']:.1f} |" for name, s in rows]
    (args.out / "diffseg.md").write_text(
        f"# DiffSeg benchmark\n\ntorch {result['torch']}, {result['threads']} threads, median of "
        f"{args.repeats}; tau = {args.tau}, {result['segments']} segments; "
        f"target <= {TARGET_S} s per image. Process CPU seconds (all threads): aggregate + segment "
        f"{result['total_cpu_s']:.3f}, GEMM {result['gemm_cpu_s']:.3f}.\n\n"
        + "\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
