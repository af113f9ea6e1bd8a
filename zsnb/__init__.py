"""zsnb: zero-shot segmentation notebooks — how Stable Diffusion's UNet already segments images."""

from zsnb.backbones import KNOWN_NAMES, Backbone, load_backbone
from zsnb.capture import Capture, capture
from zsnb.errors import ImageError, UnknownNameError, WeightsUnavailable, ZsnbError
from zsnb.images import load_image

__all__ = [
    "KNOWN_NAMES",
    "Backbone",
    "Capture",
    "ImageError",
    "UnknownNameError",
    "WeightsUnavailable",
    "ZsnbError",
    "capture",
    "load_backbone",
    "load_image",
]
__version__ = "0.1.0"
