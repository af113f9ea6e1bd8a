"""What one organism training step costs, by input size and precision: `python benchmarks/train_step.py`.

The organism's scene size was chosen from this: 32x32 scenes (self-attention at 16/8/4) against 64x64 scenes
(attention at 32/16/8), each in fp32 and with a bf16 forward, on the training batch of 32 scenes. Writes
benchmarks/results/train_step.json and train_step.md.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from timing import median_times

from zsnb import world
from zsnb.organism import UNET_CONFIG, build_scheduler, null_conditioning
from zsnb.organism.train import DEFAULTS, cpu_name

SIZES: tuple[int, ...] = (32, 64)


def step_fn(size: int, precision: str, batch: int):
    """A closure running one training step (forward, loss, backward, AdamW) on a fixed batch."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**{**UNET_CONFIG, "sample_size": size})
    opt, scheduler = torch.optim.AdamW(unet.parameters(), 1e-3), build_scheduler()
    x0 = torch.from_numpy(world.batch(range(batch), size)) * 2 - 1
    cond = null_conditioning(batch)

    def step() -> None:
        noise, t = torch.randn_like(x0), torch.randint(0, 1000, (batch,))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            pred = unet(scheduler.add_noise(x0, noise, t), t, cond).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    batch, rows = DEFAULTS["batch"], []
    for size in SIZES:
        for precision in ("fp32", "bf16"):
            seconds = median_times([step_fn(size, precision, batch)], args.repeats)[0]
            rows.append({"size": size, "attention_sides": [size // 2, size // 4, size // 8], "precision": precision,
                         "s_per_step": seconds, "steps_per_hour": 3600 / seconds})
    result = {"batch": batch, "threads": torch.get_num_threads(), "torch": torch.__version__,
              "machine": cpu_name(), "python": platform.python_version(), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_step.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"# Organism training step ({batch} scenes, {result['threads']} threads, {result['machine']})", "",
             "| scene | attention sides | precision | s / step | steps / hour |", "|---|---|---|---|---|"]
    lines += [f"| {r['size']}x{r['size']} | {r['attention_sides']} | {r['precision']} | {r['s_per_step']:.2f} | "
              f"{r['steps_per_hour']:.0f} |" for r in rows]
    (args.out / "train_step.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
