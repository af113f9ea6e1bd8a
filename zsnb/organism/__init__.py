"""The model organism: a small pixel-space `UNet2DConditionModel` trained on `zsnb.world`.

Its layout mirrors Stable Diffusion 1.x at a smaller scale: four down blocks (three with cross-attention
transformers), a cross-attention mid block and the mirrored up path, so self-attention runs at 16x16, 8x8
and 4x4 for a 32x32 input, 3 + 3 + 3 layers plus the mid block (SD 1.x: 64/32/16 and mid 8, 5 + 5 + 5 + 1).
The "text" conditioning is one null token of zeros, and the "VAE" is the identity: the UNet denoises RGB
pixels scaled to [-1, 1].
Noise follows SD's scaled-linear schedule, so a timestep means the same signal-to-noise ratio as in SD.
diffusers is imported by the functions that build the UNet or a scheduler, so the constants here (and the
registry, which reads them) load without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from diffusers import DDPMScheduler, UNet2DConditionModel

WEIGHTS_DIR = Path(__file__).parent / "weights"
UNET_FILE = WEIGHTS_DIR / "unet.safetensors"
CONFIG_FILE = WEIGHTS_DIR / "unet_config.json"
TRAINING_FILE = WEIGHTS_DIR / "training.json"
DEFAULTS_FILE = WEIGHTS_DIR / "defaults.json"

RESOLUTION = 32
CROSS_ATTENTION_DIM = 32
UNET_CONFIG: dict = {
    "sample_size": RESOLUTION,
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [32, 64, 96, 96],
    # Attention at 16, 8 and 4 (+ mid at 4): one level coarser than SD relative to the input, because
    # 32x32 attention costs more than the rest of the UNet together on 2 CPU cores.
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "layers_per_block": 1,
    "attention_head_dim": 2,  # diffusers' name for the number of heads, as in SD's config
    "cross_attention_dim": CROSS_ATTENTION_DIM,
    "norm_num_groups": 16,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}
# SD 1.x's noise schedule (its scheduler_config.json), so t=50 or t=300 mean what they mean there.
SCHEDULER_CONFIG: dict = {
    "num_train_timesteps": 1000,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "prediction_type": "epsilon",
    "clip_sample": False,
}


def build_unet(seed: int = 0) -> UNet2DConditionModel:
    """A freshly initialised organism UNet (seeded), 32x32x3 in, epsilon out."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(**UNET_CONFIG)


def build_scheduler() -> DDPMScheduler:
    """The DDPM scheduler the organism is trained and sampled with."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**SCHEDULER_CONFIG)


def null_conditioning(batch: int, dtype: torch.dtype = torch.float32, device: str = "cpu") -> torch.Tensor:
    """The organism's "empty prompt": one zero token per image, (batch, 1, CROSS_ATTENTION_DIM)."""
    return torch.zeros(batch, 1, CROSS_ATTENTION_DIM, dtype=dtype, device=device)


def method_defaults() -> dict:
    """Per-method defaults chosen on training seeds (`defaults.json` next to the weights)."""
    if not DEFAULTS_FILE.exists():
        return {}
    return json.loads(DEFAULTS_FILE.read_text())


@torch.no_grad()
def sample(unet: UNet2DConditionModel, n: int, steps: int = 50, seed: int = 0) -> torch.Tensor:
    """Generate n scenes with DDIM (eta=0) from seeded noise; returns (n, 3, R, R) in [0, 1]."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(**SCHEDULER_CONFIG)
    scheduler.set_timesteps(steps)
    size = unet.config.sample_size
    x = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed)).to(unet.device, unet.dtype)
    cond = null_conditioning(n, unet.dtype, str(unet.device))
    for t in scheduler.timesteps:
        x = scheduler.step(unet(x, t, cond).sample, t, x).prev_sample
    return ((x.float() + 1) / 2).clamp(0, 1).cpu()
