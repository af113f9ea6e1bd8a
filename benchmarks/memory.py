"""Memory of a capture at Stable Diffusion scale, measured, against zsnb.memory's estimate.

Builds a backbone's real architecture with random weights (no download), captures every self-attention map
of a batch of 1 and then of 2 images at the native size on the CPU in float32, and reads the process's peak
resident set size after each. The per-image cost is the increase from batch 1 to batch 2; what it holds
beyond the captured maps is the forward's working memory, per input pixel zsnb.memory.WORKING_BYTES_PER_PIXEL.
Writes benchmarks/results/memory.json and memory.md.

    python benchmarks/memory.py [--backbone sd15] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import gc
import json
from pathlib import Path

import torch
from timing import peak_mib  # benchmarks/timing.py: this script's folder is first on sys.path

from zsnb import capture, load_backbone, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="sd15")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    backbone = load_backbone(args.backbone, weights="random", progress=False)
    size = backbone.resolution
    peaks = {"loaded": peak_mib()}
    maps_mib = {}
    for n in (1, 2):
        cap = capture(backbone, torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0)), (300,))
        maps_mib[n] = sum(m.numel() * m.element_size() for m in cap.maps.values()) / 2**20
        peaks[f"batch {n}"] = peak_mib()
        del cap
        gc.collect()
    per_image = peaks["batch 2"] - peaks["batch 1"]
    maps = maps_mib[2] - maps_mib[1]
    result = {"backbone": args.backbone, "size": size, "dtype": str(backbone.dtype), "torch": torch.__version__,
              "peak_mib": peaks, "maps_mib_per_image": maps, "per_image_mib": per_image,
              "working_bytes_per_pixel": (per_image - maps) * 2**20 / size**2,
              "estimated_maps_mib_per_image": memory.capture_bytes(backbone, size) / 2**20,
              "batch_for_24_gb": memory.batch_size(backbone, size)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps(result, indent=1) + "\n")
    table = ["| quantity | value |", "|---|---|",
             f"| backbone, input | {args.backbone} (random weights), {size} px, {result['dtype']}, CPU |",
             f"| captured self-attention maps per image (measured / zsnb.memory) | {maps:.0f} MiB / "
             f"{result['estimated_maps_mib_per_image']:.0f} MiB |",
             f"| peak RSS increase per image (batch 1 -> 2) | {per_image:.0f} MiB |",
             f"| working memory beyond the maps, per input pixel (measured / zsnb.memory) | "
             f"{result['working_bytes_per_pixel']:.0f} B / {memory.WORKING_BYTES_PER_PIXEL} B |",
             f"| batch zsnb.memory picks for 24 GB, one timestep | {result['batch_for_24_gb']} |"]
    (args.out / "memory.md").write_text("# Capture memory at SD scale (`benchmarks/memory.py`)\n\n" + "\n".join(table)
                                        + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
