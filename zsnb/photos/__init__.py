"""Three freely licensed photographs shipped with zsnb, for real-photo examples and tests (not evaluation data).

Taken from scikit-image 0.26.0's sample data (`skimage.data`), re-encoded as JPEG (quality 90) at their
original sizes so that zsnb does not need scikit-image:
- astronaut.jpg (512 x 512): astronaut Eileen Collins, NASA; public domain.
- chelsea.jpg (451 x 300): Chelsea the cat, by Stefan van der Walt; CC0.
- coffee.jpg (600 x 400): a coffee cup, by Rachel Michetti, courtesy of Pikolo Espresso Bar; CC0.
"""

from __future__ import annotations

from pathlib import Path

from zsnb.errors import UnknownNameError

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
