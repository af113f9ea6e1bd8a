"""Three freely licensed photographs shipped with zsnb, for real-photo examples and tests (not evaluation data).

Taken from scikit-image 0.26.0's sample data (`skimage.data`), re-encoded as JPEG (quality 90) at their
original sizes so that zsnb does not need scikit-image:
- astronaut.jpg (512 x 512): astronaut Eileen Collins, NASA; public domain.
- chelsea.jpg (451 x 300): Chelsea the cat, by Stefan van der Walt; CC0.
- coffee.jpg (600 x 400): a coffee cup, by Rachel Michetti, courtesy of Pikolo Espresso Bar; CC0.
"""

from __future__ import annotations

from pathlib import Path

import torch

from zsnb.errors import UnknownNameError
from zsnb.images import image_tensor

FOLDER = Path(__file__).parent
NAMES = ("astronaut", "chelsea", "coffee")
CREDITS = {
    "astronaut": "Eileen Collins, NASA (public domain), via scikit-image",
    "chelsea": "Chelsea the cat, Stefan van der Walt (CC0), via scikit-image",
    "coffee": "coffee cup, Rachel Michetti / Pikolo Espresso Bar (CC0), via scikit-image",
}


def path(name: str) -> Path:
    """The file of a shipped photo by name (see NAMES); load it with zsnb.load_image or PIL."""
    if name not in NAMES:
        raise UnknownNameError(f"unknown photo {name!r}; shipped: {', '.join(NAMES)}.")
    return FOLDER / f"{name}.jpg"


def image(src: str | Path) -> torch.Tensor:
    """The shipped photo named src (see NAMES), else the image file at src: (3, H, W) float32 in [0, 1], own size."""
    if src in NAMES:
        return image_tensor(path(src))
    if not Path(src).is_file():
        raise UnknownNameError(f"{str(src)!r} is neither a shipped photo ({', '.join(NAMES)}) nor an image file; "
                               "pass one of those names or the path of an image.")
    return image_tensor(src)
