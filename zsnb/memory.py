"""How many images go through the UNet at once: batches chosen from a memory budget, not guessed.

A capture keeps, per image and timestep, one head-averaged (Q, K) map per attention layer and the tapped
outputs; at Stable Diffusion scale the maps dominate (SD1.x at 512 px: 341 MiB of self-attention per image
and timestep in float32). `batch_size` divides a budget (default: a 24 GB GPU), after the weights are set
aside, by that plus the forward's own working memory per image (WORKING_BYTES_PER_PIXEL, measured).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from zsnb.errors import ZsnbError
from zsnb.protocol import Backbone

DEFAULT_BUDGET_GB: float = 24.0  # what fits a 24 GB GPU, the common research card
# Working memory of one image's forward beyond what it captures, per input pixel, in float32 (half for float16,
# twice for float64). Measured with `benchmarks/memory.py` (SD1.5 architecture at 512 px on the CPU, peak RSS of
# batch 2 minus batch 1, less the captured maps: 510-580 MiB in three runs), rounded up.
WORKING_BYTES_PER_PIXEL: int = 2400
TEXT_TOKENS: int = 77  # CLIP's context length: the keys of every cross-attention map


def _itemsize(backbone: Backbone) -> int:
    """Bytes per captured value: maps are summed in float32, or float64 for a float64 model."""
    return 8 if backbone.dtype == torch.float64 else 4


def working_bytes(backbone: Backbone, size: int, n_timesteps: int = 1) -> int:
    """Working memory of one image's forward at input side `size` (all timesteps), beyond what is captured."""
    return int(WORKING_BYTES_PER_PIXEL * size * size * n_timesteps * backbone.dtype.itemsize / 4)


def capture_bytes(backbone: Backbone, size: int, n_timesteps: int = 1, attention: str | None = "self",
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


def _tap_values(backbone: Backbone, tap: str, scale: float) -> int:
    """Values of one tapped output (tokens x channels) at input scale `scale` of the native size."""
    side, channels = backbone.tap_shape(tap)
    return round(side * scale) ** 2 * channels


def batch_size(backbone: Backbone, size: int, n_timesteps: int = 1, attention: str | None = "self",
               features: Sequence[str] = (), budget_gb: float = DEFAULT_BUDGET_GB) -> int:
    """Images per forward so that maps, taps and working memory fit `budget_gb` next to the weights (>= 1)."""
    if not (isinstance(budget_gb, int | float) and budget_gb > 0):
        raise ZsnbError(f"memory budget {budget_gb!r} GB must be a positive number (e.g. 24 for a 24 GB GPU).")
    weights = backbone.weight_bytes
    per_image = capture_bytes(backbone, size, n_timesteps, attention, features) + working_bytes(backbone, size,
                                                                                                n_timesteps)
    free = budget_gb * 2**30 - weights
    if free < per_image:
        raise ZsnbError(f"one image needs about {per_image / 2**30:.1f} GB beside {weights / 2**30:.1f} GB of weights, "
                        f"more than the budget of {budget_gb} GB; raise the budget, lower the input size or capture "
                        "fewer timesteps or layers.")
    return int(free // per_image)
