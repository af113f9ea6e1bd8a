"""GPU run time per 1,000 images, estimated without a GPU: `python benchmarks/gpu_estimate.py`.

An estimate, not a measurement: no GPU was available to this project. For DiffSeg on SD1.4 at 512 and DiffCut on
SSD-1B at 1024 (each method's official setting, one image per forward as `python -m zsnb evaluate` runs them), it

1. counts the floating-point operations of what `zsnb.capture` runs per image (the VAE encoder, then the UNet:
   the whole forward with every self-attention map recorded for DiffSeg, the forward up to the encoder tap for
   DiffCut) with `torch.utils.flop_counter` on the real architectures built from the configs shipped in
   `zsnb/configs/` on the meta device (shapes only: no weights, no arithmetic, so 1024 px costs nothing here),
   and counts the torch operations dispatched (each is at least one kernel launch on a GPU);
2. checks that FLOPs track measured cost: the CPU times of `benchmarks/results/capture.json` (SD1.5 UNet at 512:
   whole forward, forward to the encoder tap, VAE encode) against the FLOPs counted here;
3. divides the FLOPs by a stated sustained throughput (SUSTAINED of each card's dense peak, from NVIDIA's
   specifications) and adds the per-image work done on the CPU, as measured in `benchmarks/results/diffseg.json`
   and `diffcut.json` (DiffSeg's merging and DiffCut's recursive NCut run on the CPU in zsnb).

Writes benchmarks/results/gpu_estimate.json and gpu_estimate.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from zsnb import extract
from zsnb.backbones import CONFIG_DIR
from zsnb.protocol import ENCODER_TAP

RESULTS = Path(__file__).parent / "results"
SUSTAINED = 0.4  # assumed share of a card's dense peak that a diffusion UNet sustains at batch 1 (not measured)
LAUNCH_S = 10e-6  # assumed CPU cost of dispatching one torch op in eager mode (typically 5-20 us; not measured)
# Dense peak TFLOP/s: fp16 on tensor cores with fp32 accumulation (what PyTorch uses); tf32 (PyTorch's default for
# convolutions in float32: cudnn.allow_tf32); fp32 without tensor cores (PyTorch's default for float32 matmuls).
GPUS: dict[str, dict[str, Any]] = {
    "A100 80 GB": {"fp16": 312.0, "tf32": 156.0, "fp32": 19.5, "memory_gb": 80,
                   "source": "NVIDIA A100 datasheet"},
    "RTX 4090 24 GB": {"fp16": 165.2, "tf32": 82.6, "fp32": 82.6, "memory_gb": 24,
                       "source": "NVIDIA Ada architecture whitepaper (fp16 with fp32 accumulate)"},
    "TITAN RTX 24 GB": {"fp16": 130.5, "tf32": 16.3, "fp32": 16.3, "memory_gb": 24,
                        "source": "NVIDIA (130.5 tensor TFLOP/s, fp32 accumulate); Turing has no tf32: fp32 rate"},
}
RUNS = {  # what `python -m zsnb evaluate` runs per image with the official parameters
    "diffseg": {"backbone": "sd14", "config": "sd15", "size": 512, "text": 768, "timestep": 300,
                "what": "DiffSeg on SD1.4 at 512: VAE encode, whole UNet forward, all 16 self-attention maps"},
    "diffcut": {"backbone": "ssd-1b", "config": "ssd-1b", "size": 1024, "text": 2048, "timestep": 50,
                "what": "DiffCut on SSD-1B at 1024: VAE encode, UNet forward up to the encoder tap"},
}
CONV_OPS = ("convolution",)  # op names counted as convolutions (tf32 in float32); the rest are matmuls


class OpCount(TorchDispatchMode):
    """Counts the torch operations dispatched (on a GPU each launches at least one kernel)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        self.ops += 1
        return func(*args, **(kwargs or {}))


def _split(counter: FlopCounterMode) -> dict[str, float]:
    """Total FLOPs of a counted region, split into convolutions and the rest (matmuls, attention)."""
    by_op = counter.get_flop_counts()["Global"]
    conv = sum(v for op, v in by_op.items() if any(c in str(op) for c in CONV_OPS))
    total = counter.get_total_flops()
    return {"total": float(total), "conv": float(conv), "matmul": float(total - conv)}


def _count(fn) -> dict[str, float]:  # noqa: ANN001
    ops = OpCount()
    with FlopCounterMode(display=False) as flops, ops:
        fn()
    return {**_split(flops), "ops": ops.ops}


def count(config: str, size: int, text_dim: int, timestep: int) -> dict[str, Any]:
    """FLOPs and op counts of one image's VAE encode, whole UNet forward (all maps), forward to the encoder tap."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    folder = CONFIG_DIR / config
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(json.loads((folder / "unet.json").read_text()))
        vae = AutoencoderKL.from_config(json.loads((folder / "vae.json").read_text()))
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    latent = torch.empty(1, unet.config.in_channels, size // factor, size // factor, device="meta")
    t = torch.tensor([timestep], device="meta")
    sdxl = unet.config.addition_embed_type == "text_time"

    class Cond:  # the empty prompt's conditioning, as zsnb.backbones builds it
        encoder_hidden_states = torch.empty(1, 77, text_dim, device="meta")
        added_cond_kwargs = ({"text_embeds": torch.empty(1, 1280, device="meta"),
                              "time_ids": torch.empty(1, 6, device="meta")} if sdxl else None)

    layers = {n.removesuffix(".processor") for n in unet.attn_processors}
    self_layers = {n for n in layers if n.endswith("attn1")}
    tap = extract.resolve_tap(unet, ENCODER_TAP)
    with torch.no_grad():
        out = {
            "vae_encode": _count(lambda: vae.encode(torch.empty(1, 3, size, size, device="meta")).latent_dist.mean),
            "unet_plain": _count(lambda: unet(latent, t, Cond.encoder_hidden_states,
                                              added_cond_kwargs=Cond.added_cond_kwargs)),
            "unet_all_maps": _count(lambda: extract.record(unet, latent, t, Cond, self_layers, set())),
            "unet_to_tap": _count(lambda: extract.record(unet, latent, t, Cond, set(), {tap}, "auto")),
        }
    out["params"] = {"unet": sum(p.numel() for p in unet.parameters()),
                     "vae": sum(p.numel() for p in vae.parameters()), "text": text_params(folder)}
    return out


def text_params(folder: Path) -> int:
    """Parameters of the text encoder(s) in the shipped configs (they run once: the empty prompt is cached)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    total = 0
    for name in ("text_encoder.json", "text_encoder_2.json"):
        if (folder / name).is_file():
            with torch.device("meta"):
                model = CLIPTextModel(CLIPTextConfig(**json.loads((folder / name).read_text())))
            total += sum(p.numel() for p in model.parameters())
    return total


def memory_gib(params: dict[str, int], size: int, maps_mib: float, working_bytes_per_pixel: float,
               dtype: str) -> dict[str, float]:
    """GPU memory of one image's run: weights (VAE in float32), the forward's working memory (measured per input
    pixel in float32 at SD1.5 scale, halved in float16), the recorded maps (summed in float32 whatever the dtype)."""
    width = 2 if dtype == "float16" else 4
    weights = (params["unet"] + params["text"]) * width + params["vae"] * 4
    working = working_bytes_per_pixel * size**2 * width / 4
    return {"weights": weights / 2**30, "working": working / 2**30, "maps": maps_mib / 1024,
            "total": (weights + working) / 2**30 + maps_mib / 1024}


def seconds(flops: dict[str, float], gpu: dict[str, Any], dtype: str) -> float:
    """Compute time of counted FLOPs at SUSTAINED of the card's peak: float16 on tensor cores; float32 with
    convolutions in tf32 and matmuls in fp32 (PyTorch's defaults)."""
    if dtype == "float16":
        return flops["total"] / (SUSTAINED * gpu["fp16"] * 1e12)
    return flops["conv"] / (SUSTAINED * gpu["tf32"] * 1e12) + flops["matmul"] / (SUSTAINED * gpu["fp32"] * 1e12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    measured = {name: json.loads((RESULTS / f"{name}.json").read_text()) for name in ("capture", "diffseg",
                                                                                       "diffcut", "memory")}
    counted = {m: count(r["config"], r["size"], r["text"], r["timestep"]) for m, r in RUNS.items()}

    # 2. FLOPs against measured CPU time (SD1.5 at 512, float32, capture.json's machine and threads)
    cap, sd = measured["capture"], counted["diffseg"]
    cpu = {"threads": cap["threads"], "torch": cap["torch"]}
    for key, row, flops in (("unet_plain", "plain forward", sd["unet_plain"]),
                            ("unet_to_tap", "encoder features, stop_after='auto'", sd["unet_to_tap"]),
                            ("unet_all_maps", "all 16 self-attention maps", sd["unet_all_maps"])):
        s = cap["rows"][row]["s"]
        cpu[key] = {"s": s, "tflop": flops["total"] / 1e12, "gflop_per_s": flops["total"] / s / 1e9}
    cpu["vae_encode"] = {"s": cap["vae_encode_s"], "tflop": sd["vae_encode"]["total"] / 1e12,
                         "gflop_per_s": sd["vae_encode"]["total"] / cap["vae_encode_s"] / 1e9}
    cpu["to_tap_share"] = {"flops": sd["unet_to_tap"]["total"] / sd["unet_plain"]["total"],
                           "measured_time": cap["rows"]["encoder features, stop_after='auto'"]["ratio_to_plain"]}
    cpu["maps_overhead_time"] = cap["rows"]["all 16 self-attention maps"]["ratio_to_plain"]

    # 3. per image on each card: GPU work (compute, or dispatch when that is longer) + CPU-side algorithm
    algo = {"diffseg": measured["diffseg"]["total_s"],  # aggregate + segment, 16 maps at 64 x 64
            "diffcut": sum(r["s"] for r in measured["diffcut"]["rows"] if r["step"] in (
                "recursive NCut, smooth field (over-splitting), solver=auto", "assign_concepts 32 -> 128",
                "PAMR 128 x 128, 10 it., dilations 1-8"))}
    unet_part = {"diffseg": "unet_all_maps", "diffcut": "unet_to_tap"}
    estimates: dict[str, Any] = {}
    for m, part in unet_part.items():
        vae, unet = counted[m]["vae_encode"], counted[m][part]
        ops = vae["ops"] + unet["ops"]
        estimates[m] = {"tflop_per_image": (vae["total"] + unet["total"]) / 1e12, "vae_tflop": vae["total"] / 1e12,
                        "unet_tflop": unet["total"] / 1e12, "ops_per_image": ops, "dispatch_s": ops * LAUNCH_S,
                        "cpu_algorithm_s": algo[m], "cards": {}}
        for card, gpu in GPUS.items():
            for dtype in ("float16", "float32"):
                # zsnb runs the VAE in float32 whatever the UNet's dtype (force_upcast, zsnb.backbones._vae_dtype)
                vae_s, unet_s = seconds(vae, gpu, "float32"), seconds(unet, gpu, dtype)
                per_image = max(vae_s + unet_s, ops * LAUNCH_S) + algo[m]
                estimates[m]["cards"][f"{card}, {dtype}"] = {
                    "vae_s": vae_s, "unet_s": unet_s, "per_image_s": per_image,
                    "per_1000_images_min": per_image * 1000 / 60}
    mem = measured["memory"]
    for m, part in unet_part.items():
        maps = mem["maps_mib_per_image"] if part == "unet_all_maps" else 0.0
        estimates[m]["memory_gib"] = {d: memory_gib(counted[m]["params"], RUNS[m]["size"], maps,
                                                    mem["working_bytes_per_pixel"], d) for d in ("float16", "float32")}
    result = {"sustained_share": SUSTAINED, "launch_s": LAUNCH_S, "gpus": GPUS, "runs": RUNS, "counted": counted,
              "cpu_check": cpu, "estimates": estimates, "torch": torch.__version__}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_estimate.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "gpu_estimate.md").write_text(markdown(result) + "\n")
    print(markdown(result))


def markdown(r: dict[str, Any]) -> str:
    """The estimate as Markdown, arithmetic shown."""
    c, e = r["cpu_check"], r["estimates"]
    lines = ["# GPU time per 1,000 images: an ESTIMATE (`benchmarks/gpu_estimate.py`)", "",
             "No GPU was available: these are FLOP counts of the real architectures (meta device, shipped configs) "
             f"divided by an assumed sustained throughput of {r['sustained_share']:.0%} of each card's dense peak, "
             "plus the CPU-side per-image work measured in `benchmarks/results/diffseg.json` and `diffcut.json`. "
             "One image per forward, as `python -m zsnb evaluate` runs; loading the model and reading the images "
             "are not included.", "",
             "## What one image costs (counted)", "",
             "| run | TFLOP per image: VAE + UNet | torch ops dispatched | CPU-side algorithm (s, measured) |",
             "|---|---|---|---|"]
    for m, run in r["runs"].items():
        lines.append(f"| {run['what']} | {e[m]['vae_tflop']:.2f} + {e[m]['unet_tflop']:.2f} | "
                     f"{e[m]['ops_per_image']:,} | {e[m]['cpu_algorithm_s']:.2f} |")
    for m in r["runs"]:
        parts = r["counted"][m]
        lines.append("")
        lines.append(f"{m}: VAE encode {parts['vae_encode']['total'] / 1e12:.2f} TFLOP; UNet whole forward "
                     f"{parts['unet_plain']['total'] / 1e12:.2f}, with every self-attention map recorded "
                     f"{parts['unet_all_maps']['total'] / 1e12:.2f}, to the encoder tap "
                     f"{parts['unet_to_tap']['total'] / 1e12:.2f}; torch ops: whole forward "
                     f"{parts['unet_plain']['ops']:,}, with the maps {parts['unet_all_maps']['ops']:,}, to the tap "
                     f"{parts['unet_to_tap']['ops']:,}, VAE {parts['vae_encode']['ops']:,}; UNet "
                     f"{parts['params']['unet'] / 1e9:.2f} B "
                     f"parameters, VAE {parts['params']['vae'] / 1e6:.0f} M.")
    lines += ["", "## Do FLOPs track measured time? (SD1.5 at 512, float32, on the CPU of `capture.json`, "
              f"{c['threads']} threads)", "",
              "| step | measured s | TFLOP counted | GFLOP/s |", "|---|---|---|---|"]
    for key, name in (("unet_plain", "UNet, whole forward"), ("unet_all_maps", "UNet, all 16 maps recorded"),
                      ("unet_to_tap", "UNet to the encoder tap"), ("vae_encode", "VAE encode")):
        lines.append(f"| {name} | {c[key]['s']:.2f} | {c[key]['tflop']:.3f} | {c[key]['gflop_per_s']:.0f} |")
    lines += ["", f"The forward to the encoder tap is {c['to_tap_share']['flops']:.2f} of the whole forward's FLOPs "
              f"and took {c['to_tap_share']['measured_time']:.2f} of its time; recording every map adds no FLOPs "
              f"but took {c['maps_overhead_time']:.2f}x the time (memory traffic, not arithmetic). The VAE encoder "
              "costs more than the UNet on both counts. So FLOPs are a fair proxy for the forward's cost, within "
              "the 10-20% that memory-bound work adds.", "",
              "## Estimated time per image and per 1,000 images", "",
              f"Assumptions: sustained {r['sustained_share']:.0%} of the dense peak (float16: tensor cores with "
              "float32 accumulation; float32: convolutions in TF32 and matmuls in FP32, PyTorch's defaults); the "
              "VAE in float32 whatever the dtype (zsnb upcasts it, as diffusers' force_upcast asks); "
              f"{r['launch_s'] * 1e6:.0f} us of CPU per dispatched op, counted instead when it is longer than the "
              "compute (GPU waiting for Python); the CPU-side algorithm time as measured on this project's 2-core "
              "CPU (a GPU host's CPU is usually faster).", "",
              "| card, dtype | peak TFLOP/s (fp16 / tf32 / fp32) | DiffSeg SD1.4 512: s/image | per 1,000 images "
              "| DiffCut SSD-1B 1024: s/image | per 1,000 images |", "|---|---|---|---|---|---|"]
    for key in e["diffseg"]["cards"]:
        card = r["gpus"][key.rsplit(", ", 1)[0]]
        ds, dc = e["diffseg"]["cards"][key], e["diffcut"]["cards"][key]
        lines.append(f"| {key} | {card['fp16']:g} / {card['tf32']:g} / {card['fp32']:g} | {ds['per_image_s']:.2f} | "
                     f"{ds['per_1000_images_min']:.1f} min | {dc['per_image_s']:.2f} | "
                     f"{dc['per_1000_images_min']:.1f} min |")
    lines += ["", "## GPU memory of one image's run (weights + working memory + recorded maps)", "",
              "| run | float16 | float32 |", "|---|---|---|"]
    for m, run in r["runs"].items():
        g = e[m]["memory_gib"]
        lines.append(f"| {m} ({run['backbone']}, {run['size']} px) | " + " | ".join(
            f"{g[d]['total']:.1f} GiB ({g[d]['weights']:.1f} + {g[d]['working']:.1f} + {g[d]['maps']:.2f})"
            for d in ("float16", "float32")) + " |")
    lines += ["", "Weights from the shipped configs' parameter counts (UNet and text encoders in the run's dtype, "
              "the VAE in float32); working memory from `benchmarks/results/memory.json` (measured per input pixel "
              "at SD1.5 scale in float32, assumed the same per pixel for SSD-1B and halved in float16); maps summed in "
              "float32 whatever the dtype. Either run fits a 24 GB card at batch 1 in either dtype."]
    lines += ["", "Peaks: " + "; ".join(f"{k}: {v['source']}" for k, v in r["gpus"].items()) + ".",
              "", "Published, for comparison (docs/reference.md#reported-cost): DiffCut reports about one second "
              "per image at 1024 on one TITAN RTX in float16 (its Table 11: DiffCut 1.11, DiffSeg on SD1.4 2.75, "
              "probably seconds per image; DiffSeg's own code runs its UNet in Keras' default float32)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
