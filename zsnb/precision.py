"""Working precision: float32 for real backbones, float64 where the input already is (the organism on a CPU).

Float32 kernels differ between CPUs (AVX2, AVX-512, AMX and ARM reduce in different orders), so a KL divergence
or an NCut value that sits near a threshold can fall on either side of it depending on the machine. The
organism runs in float64 on the CPU, and every algorithm keeps float64 inputs in float64, so its results and
the notebooks' stored outputs are the same on any CPU.
"""

from __future__ import annotations

import torch
from torch import Tensor


def real_dtype(x: Tensor) -> torch.dtype:
    """float64 if x is float64, else float32 (half precision and integers are promoted)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def as_real(x: Tensor) -> Tensor:
    """x as float32, or unchanged if it is float64; shape unchanged."""
    return x.to(real_dtype(x))
