"""zsnb: zero-shot segmentation notebooks — how Stable Diffusion's UNet already segments images.

The top-level names are loaded on first use (PEP 562), so importing an algorithm module such as
`zsnb.diffseg` does not import diffusers.
"""

from __future__ import annotations

import importlib
from typing import Any

from zsnb.errors import ImageError, UnknownNameError, WeightsUnavailable, ZsnbError

_LAZY: dict[str, str] = {
    "KNOWN_NAMES": "zsnb.backbones",
    "Backbone": "zsnb.backbones",
    "load_backbone": "zsnb.backbones",
    "Capture": "zsnb.protocol",
    "Needs": "zsnb.protocol",
    "capture": "zsnb.protocol",
    "load_image": "zsnb.images",
    "Method": "zsnb.registry",
    "methods": "zsnb.registry",
    "params": "zsnb.registry",
    "register": "zsnb.registry",
    "segment": "zsnb.registry",
    "segment_grid": "zsnb.harness",
}

__all__ = ["ImageError", "UnknownNameError", "WeightsUnavailable", "ZsnbError", *_LAZY]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'zsnb' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # cached: later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
