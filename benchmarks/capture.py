"""Cost of attention capture on an SD1.5-architecture UNet at 512x512: `python benchmarks/capture.py`.

Random weights (the architecture is what costs time, not the values). Times one UNet forward at a 64x64
latent: plain (diffusers' fused attention), with all 16 self-attention maps captured (head-averaged inside
the processor), and DiffCut-style encoder-only features with and without `stop_after="auto"`. Peak memory
is the process's peak resident set size after each variant (ru_maxrss, monotone, so variants run from the
cheapest). Writes benchmarks/results/capture.json and capture.md.
"""

from __future__ import annotations

import argparse
import json
import resource
from pathlib import Path

import torch
from timing import median_times

from zsnb import capture, load_backbone
from zsnb.extract import attention_processors
from zsnb.protocol import ENCODER_TAP

TARGET_RATIO = 1.3  # capture time / plain forward time


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    backbone = load_backbone("sd15", weights="random")
    image = torch.rand(3, 512, 512, generator=torch.Generator().manual_seed(0))
    latent = backbone.encode_image(image[None])
    t = torch.tensor([300])
    cond = backbone.encode_prompt("").encoder_hidden_states

    def plain() -> None:
        with torch.no_grad(), attention_processors(backbone.unet, {}):
            backbone.unet(latent, t, cond)

    rows = {}
    rows["plain forward"] = {"s": median_times([plain], args.repeats)[0], "peak_mib": peak_mib()}
    for name, kwargs in {
        "encoder features, stop_after='auto'": {"attention": None, "features": (ENCODER_TAP,),
                                                 "stop_after": "auto"},
        "encoder features, full forward": {"attention": None, "features": (ENCODER_TAP,)},
        "all 16 self-attention maps": {"attention": "self"},
    }.items():
        # capture() also runs the VAE encoder; subtract it so rows compare UNet forwards only
        s = median_times([lambda kw=kwargs: capture(backbone, image, (300,), **kw)], args.repeats)[0]
        rows[name] = {"s": s, "peak_mib": peak_mib()}
    vae_s = median_times([lambda: backbone.encode_image(image[None])], args.repeats)[0]
    for name in list(rows)[1:]:
        rows[name]["s"] -= vae_s
    base = rows["plain forward"]["s"]
    for r in rows.values():
        r["ratio_to_plain"] = round(r["s"] / base, 3)
        r["s"] = round(r["s"], 3)
    result = {"rows": rows, "vae_encode_s": round(vae_s, 3), "target_ratio": TARGET_RATIO,
              "torch": torch.__version__, "threads": torch.get_num_threads(), "resolution": 512}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "capture.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["# Capture cost, SD1.5 architecture (random weights), 512x512, CPU", "",
             "| variant | UNet time (s) | ratio to plain | peak RSS so far (MiB) |", "|---|---|---|---|"]
    lines += [f"| {k} | {r['s']:.2f} | {r['ratio_to_plain']:.2f} | {r['peak_mib']:.0f} |" for k, r in rows.items()]
    lines += ["", f"Target: capturing all maps costs at most {TARGET_RATIO}x the plain forward. VAE encode "
              f"({vae_s:.2f} s) excluded."]
    (args.out / "capture.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
