"""How many images go through the UNet at once: batches chosen from a memory budget, not guessed.

A capture keeps, per image and timestep, one head-averaged (Q, K) map per attention layer and the tapped
outputs; at Stable Diffusion scale the maps dominate (SD1.x at 512 px: 341 MiB of self-attention per image
and timestep in float32). `batch_size` divides a budget (default: a 24 GB GPU), after the weights are set
aside, by that plus the forward's own working memory per image (WORKING_BYTES_PER_PIXEL, measured).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from zsnb import vit
from zsnb.errors import ZsnbError
from zsnb.extract import resolve_tap

DEFAULT_BUDGET_GB: float = 24.0  # what fits a 24 GB GPU, the common research card
# Working memory of one image's forward beyond what it captures, per input pixel, in float32 (half for float16,
# twice for float64). Measured with `benchmarks/memory.py` (SD1.5 architecture at 512 px on the CPU, peak RSS of
# batch 2 minus batch 1, less the captured maps: 510-580 MiB in three runs), rounded up.
WORKING_BYTES_PER_PIXEL: int = 2400
TEXT_TOKENS: int = 77  # CLIP's context length: the keys of every cross-attention map


def _itemsize(backbone: Any) -> int:
    """Bytes per captured value: maps are summed in float32, or float64 for a float64 model."""
    return 8 if getattr(backbone, "dtype", torch.float32) == torch.float64 else 4


def working_bytes(backbone: Any, size: int, n_timesteps: int = 1) -> int:
    """Working memory of one image's forward at input side `size` (all timesteps), beyond what is captured."""
    dtype = getattr(backbone, "dtype", torch.float32)
    return int(WORKING_BYTES_PER_PIXEL * size * size * n_timesteps * dtype.itemsize / 4)


def capture_bytes(backbone: Any, size: int, n_timesteps: int = 1, attention: str | None = "self",
                  features: Sequence[str] = ()) -> int:
    """Bytes one image leaves in a Capture at input side `size`: maps (Q x K) and tap outputs, all timesteps."""
    scale = size / backbone.resolution
    kinds = {"self": ["self"], "cross": ["cross"], "both": ["self", "cross"], None: []}[attention]
    values = 0
    for kind in kinds:
        for side, names in backbone.attention_layers(kind).items():
            q = round(side * scale) ** 2
            values += len(names) * q * (q if kind == "self" else TEXT_TOKENS)
    values += sum(_tap_values(backbone, tap, scale) for tap in features)
    return values * _itemsize(backbone) * n_timesteps


def _tap_values(backbone: Any, tap: str, scale: float) -> int:
    """Values of one tapped output (tokens x channels) at input scale `scale` of the native size."""
    unet = getattr(backbone, "unet", None)
    if unet is None:  # the ViT: every tap is a (tokens, width) block output
        return round(max(backbone.attention_layers("self")) * scale) ** 2 * vit.WIDTH
    layer = resolve_tap(unet, tap)
    side = next(s for kind in ("self", "cross") for s, names in backbone.attention_layers(kind).items()
                if layer in names)
    return round(side * scale) ** 2 * unet.get_submodule(layer).to_out[0].out_features


def batch_size(backbone: Any, size: int, n_timesteps: int = 1, attention: str | None = "self",
               features: Sequence[str] = (), budget_gb: float = DEFAULT_BUDGET_GB) -> int:
    """Images per forward so that maps, taps and working memory fit `budget_gb` next to the weights (>= 1)."""
    if not (isinstance(budget_gb, int | float) and budget_gb > 0):
        raise ZsnbError(f"memory budget {budget_gb!r} GB must be a positive number (e.g. 24 for a 24 GB GPU).")
    weights = sum(p.numel() * p.element_size() for p in getattr(backbone, "unet", torch.nn.Module()).parameters())
    per_image = capture_bytes(backbone, size, n_timesteps, attention, features) + working_bytes(backbone, size,
                                                                                                n_timesteps)
    free = budget_gb * 2**30 - weights
    if free < per_image:
        raise ZsnbError(f"one image needs about {per_image / 2**30:.1f} GB beside {weights / 2**30:.1f} GB of weights, "
                        f"more than the budget of {budget_gb} GB; raise the budget, lower the input size or capture "
                        "fewer timesteps or layers.")
    return int(free // per_image)
