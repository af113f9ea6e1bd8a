"""Time DiffCut's recursive NCut at SSD-1B scale against one fp32 eigh of the same size.

Inputs (32 x 32 tokens x 1280 channels, as SSD-1B's E32 tap at 1024 px): "planted", six Voronoi regions
each with its own random centre plus noise; "smooth", a blurred random field with no true segments,
whose every region has cheap cuts, so recursion runs to the min_size / max_depth guards. Reference: one
fp32 `torch.linalg.eigh` of a 1024 x 1024 symmetric matrix, measured interleaved with the work, so a
busy machine slows both alike. Also times assign_concepts (32 -> 128) and PAMR at 128 x 128.

    python benchmarks/diffcut.py [--out benchmarks/results] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F
from timing import median_times

from zsnb import diffcut
from zsnb.pamr import pamr

SIDE: int = 32  # SSD-1B E32 grid at 1024 px
CHANNELS: int = 1280  # SSD-1B E32 width
SEGMENTS: int = 6
NOISE: float = 0.7  # per-channel noise std against unit-variance centres
SMOOTH_SIGMA: float = 3.0  # blur of the random field, in tokens
EVAL_SIZE: int = 128  # DiffCut's evaluation resolution
TARGET_EIGH: float = 4.0  # recursive NCut per image, in eigh-equivalents


def planted(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(SIDE, SIDE, CHANNELS) features and (SIDE, SIDE) truth: Voronoi cells, random centre + noise each."""
    g = torch.Generator().manual_seed(seed)
    sites = torch.rand(SEGMENTS, 2, generator=g) * SIDE
    pix = torch.cartesian_prod(torch.arange(SIDE) + 0.5, torch.arange(SIDE) + 0.5)  # (SIDE*SIDE, 2)
    truth = torch.cdist(pix, sites).argmin(1)
    feats = torch.randn(SEGMENTS, CHANNELS, generator=g)[truth]
    feats = feats + NOISE * torch.randn(SIDE * SIDE, CHANNELS, generator=g)
    return feats.reshape(SIDE, SIDE, CHANNELS), truth.reshape(SIDE, SIDE)


def smooth(seed: int) -> torch.Tensor:
    """(SIDE, SIDE, CHANNELS) Gaussian-blurred white noise: spatially coherent, but no true segments."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, CHANNELS, SIDE, SIDE, generator=g)
    radius = int(3 * SMOOTH_SIGMA)
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1) / SMOOTH_SIGMA) ** 2)
    kernel = (taps / taps.sum()).repeat(CHANNELS, 1, 1, 1)  # (C, 1, 1, K): separable, per channel
    x = F.conv2d(F.pad(noise, [radius, radius, 0, 0], mode="reflect"), kernel, groups=CHANNELS)
    x = F.conv2d(F.pad(x, [0, 0, radius, radius], mode="reflect"), kernel.transpose(2, 3), groups=CHANNELS)
    return x[0].permute(1, 2, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--repeats", type=int, default=5)
    # One thread by default: ratios are then stable on a shared CPU, where OpenMP threads spin-wait for
    # each other and a 2-thread eigh was measured anywhere from 0.07 s to 15 s.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    sym = torch.randn(SIDE * SIDE, SIDE * SIDE, generator=torch.Generator().manual_seed(args.seed))
    sym = (sym + sym.T) / 2

    def eigh() -> object:
        return torch.linalg.eigh(sym)

    feats, truth = planted(args.seed)
    inputs = {"planted (6 segments)": feats, "smooth field (over-splitting)": smooth(args.seed)}
    rows = []
    for name, x in inputs.items():
        for solver in ("auto", "dense"):
            labels, nodes = diffcut.recursive_ncut_tree(x, solver=solver)
            work_s, eigh_s = median_times([lambda x=x, s=solver: diffcut.recursive_ncut(x, solver=s), eigh],
                                          args.repeats)
            rows.append({"step": f"recursive NCut, {name}, solver={solver}", "s": work_s, "eigh_s": eigh_s,
                         "eigh_equivalents": work_s / eigh_s, "segments": int(labels.max()) + 1,
                         "nodes": len(nodes), "depth": max(n.depth for n in nodes)})
    labels = diffcut.recursive_ncut(feats)
    image = torch.rand(3, EVAL_SIZE, EVAL_SIZE, generator=torch.Generator().manual_seed(args.seed))
    size = EVAL_SIZE
    coarse = diffcut.assign_concepts(labels, feats, size)
    steps = {f"assign_concepts {SIDE} -> {EVAL_SIZE}": lambda: diffcut.assign_concepts(labels, feats, size),
             f"PAMR {EVAL_SIZE} x {EVAL_SIZE}, 10 it., dilations 1-8": lambda: pamr(image, coarse)}
    for name, fn in steps.items():
        work_s, eigh_s = median_times([fn, eigh], args.repeats)
        rows.append({"step": name, "s": work_s, "eigh_s": eigh_s, "eigh_equivalents": work_s / eigh_s})

    result = {"torch": torch.__version__, "threads": args.threads, "repeats": args.repeats, "tau": 0.5,
              "alpha": 10.0, "target_eigh_equivalents": TARGET_EIGH, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "diffcut.json").write_text(json.dumps(result, indent=2) + "\n")
    table = ["| step | median s | x eigh | segments | nodes | depth |", "|---|---|---|---|---|---|"]
    table += [f"| {r['step']} | {r['s']:.4f} | {r['eigh_equivalents']:.2f} | {r.get('segments', '')} | "
              f"{r.get('nodes', '')} | {r.get('depth', '')} |" for r in rows]
    eigh_s = statistics.median(r["eigh_s"] for r in rows)
    (args.out / "diffcut.md").write_text(
        f"# DiffCut benchmark\n\ntorch {result['torch']}, {args.threads} threads, median of {args.repeats} "
        f"(interleaved with the reference); tau 0.5, alpha 10, {SIDE} x {SIDE} tokens x {CHANNELS} channels. "
        f"Reference: fp32 eigh of a {SIDE * SIDE} x {SIDE * SIDE} symmetric matrix, median {eigh_s:.4f} s. "
        f"Target <= {TARGET_EIGH:g} eigh-equivalents per image.\n\n" + "\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
