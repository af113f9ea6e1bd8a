"""Train the model organism: `python -m zsnb.organism.train [--steps N] [--out DIR]`.

DDPM epsilon-prediction on freshly drawn `zsnb.world` training scenes, AdamW with warm-up, gradient
clipping and an exponential moving average (EMA) of the weights; the EMA weights are exported. A checkpoint
is written every `--checkpoint-every` steps and a rerun with the same `--out` resumes from it, so an
interrupted run loses at most that many steps. `--export` writes the weights shipped in the package.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from tqdm import tqdm

from zsnb import world
from zsnb.organism import (
    CONFIG_FILE,
    SCHEDULER_CONFIG,
    TRAINING_FILE,
    UNET_CONFIG,
    UNET_FILE,
    build_scheduler,
    build_unet,
    null_conditioning,
)

DEFAULTS = {
    "steps": 11400,
    "batch": 32,
    "lr": 1e-3,
    "warmup": 200,
    "ema": 0.999,
    "grad_clip": 1.0,
    "seed": 0,
    # "bf16": forward in bf16 autocast. On the 2-core AVX-512 machine that trained the shipped weights a step
    # took 0.61 s against 0.92 s in fp32 (benchmarks/results/train_step.md); CPUs without native bf16 may be slower.
    "precision": "bf16",
}
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


def training_batch(step: int, batch: int, seed: int) -> torch.Tensor:
    """Scenes for one step in [-1, 1], (batch, 3, 32, 32); seeds walk TRAIN_SEEDS deterministically."""
    start = (seed * 7919 + step * batch) % (len(world.TRAIN_SEEDS) - batch)
    images = world.batch(world.TRAIN_SEEDS[start : start + batch])
    return torch.from_numpy(images) * 2 - 1


def train(out: Path, steps: int, batch: int, lr: float, warmup: int, ema: float, grad_clip: float,
          seed: int, precision: str = "fp32", checkpoint_every: int = 200) -> dict:
    """Train (or resume) into `out`; returns the training record (config, losses, wall time)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; use one of {list(PRECISIONS)}.")
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    unet = build_unet(seed)
    ema_unet = copy.deepcopy(unet).requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    noise_scheduler = build_scheduler()
    record = {"losses": [], "wall_s": 0.0, "step": 0}
    if ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=False)
        unet.load_state_dict(state["unet"])
        ema_unet.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        record = state["record"]
        torch.set_rng_state(state["rng"])
    else:
        torch.manual_seed(seed)
    if record["step"] < steps:  # each (re)start's threads, CPU and world, so each session can be read apart
        record.setdefault("sessions", []).append(
            {"from_step": record["step"], "threads": torch.get_num_threads(), "machine": cpu_name(),
             "world": world.DESIGN})
    cond = null_conditioning(batch)
    unet.train()
    bar = tqdm(range(record["step"], steps), initial=record["step"], total=steps, desc="organism")
    t0 = time.perf_counter() - record["wall_s"]
    for step in bar:
        x0 = training_batch(step, batch, seed)
        noise = torch.randn_like(x0)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (batch,))
        # Only the forward runs in bf16: weights, optimiser and EMA stay fp32 either way.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            pred = unet(noise_scheduler.add_noise(x0, noise, t), t, cond).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), grad_clip)
        opt.step()
        sched.step()
        with torch.no_grad():
            for pe, p in zip(ema_unet.parameters(), unet.parameters(), strict=True):
                pe.lerp_(p, 1 - ema)
        record["losses"].append(round(loss.item(), 5))
        record["step"] = step + 1
        record["wall_s"] = time.perf_counter() - t0
        bar.set_postfix(loss=f"{sum(record['losses'][-50:]) / len(record['losses'][-50:]):.4f}")
        if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
            state = {"unet": unet.state_dict(), "ema": ema_unet.state_dict(), "opt": opt.state_dict(),
                     "sched": sched.state_dict(), "record": record, "rng": torch.get_rng_state()}
            torch.save(state, ckpt_path.with_suffix(".tmp"))
            ckpt_path.with_suffix(".tmp").replace(ckpt_path)  # atomic: a kill never leaves half a file
    torch.save(ema_unet.state_dict(), out / "ema.pt")
    return record


def cpu_name() -> str:
    """The CPU's model name where the OS reports one (Linux), else the architecture."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {platform.machine()}"
    return platform.processor() or platform.machine()


def export(out: Path, record: dict, args: dict) -> None:
    """Write the EMA weights (fp16 safetensors), the UNet config and the training record into the package."""
    ema_state = torch.load(out / "ema.pt")
    save_file({k: v.half().contiguous() for k, v in ema_state.items()}, str(UNET_FILE))
    CONFIG_FILE.write_text(json.dumps(UNET_CONFIG, indent=2) + "\n")
    info = {
        "args": args,
        "unet_config": UNET_CONFIG,
        "scheduler_config": SCHEDULER_CONFIG,
        "steps": record["step"],
        "wall_s": round(record["wall_s"], 1),
        "sessions": record["sessions"],
        "torch": torch.__version__,
        "loss_every_10_steps": [round(sum(record["losses"][i : i + 10]) / 10, 5)
                                for i in range(0, len(record["losses"]) - 9, 10)],
    }
    TRAINING_FILE.write_text(json.dumps(info, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for key, value in DEFAULTS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--out", type=Path, default=Path("runs/organism"), help="checkpoints; rerun resumes")
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--export", action="store_true", help="write the weights into zsnb/organism/weights")
    args = parser.parse_args()
    hparams = {k: getattr(args, k) for k in DEFAULTS}
    record = train(args.out, checkpoint_every=args.checkpoint_every, **hparams)
    print(f"trained {record['step']} steps in {record['wall_s'] / 60:.1f} min; "
          f"mean loss of the last 100 steps {sum(record['losses'][-100:]) / len(record['losses'][-100:]):.4f}")
    if args.export:
        export(args.out, record, hparams)
        print(f"exported {UNET_FILE}")


if __name__ == "__main__":
    main()
