"""load_image: every supported input, the one input convention (whole image resized), and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from zsnb import ImageError, UnknownNameError, load_image, photos
from zsnb.images import center_crop, image_tensor


def test_the_whole_image_is_resized_and_the_evaluation_crop_is_the_centre():
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, 10:30] = 255  # the centred 20x20 square is white
    assert load_image(arr).shape == (3, 20, 40)  # no size: the image as it is
    out = load_image(arr, 32)
    assert out.shape == (3, 32, 32) and out[:, :, 0].max() == 0 and out[:, :, 16].min() == 1.0  # black sides kept
    crop = center_crop(load_image(arr))
    assert crop.shape == (3, 20, 20) and crop.min() == 1.0
    assert center_crop(torch.zeros(7, 9), shrink=1).shape == (6, 6)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "RGB"])
def test_pil_modes(mode):
    image = Image.fromarray(np.full((16, 16, 3), 128, dtype=np.uint8)).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = Image.fromarray(np.full((16, 16), 32768, dtype=np.uint16))
    out = load_image(image)
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_paths_and_tensors(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(path)
    from_path = load_image(path)
    torch.testing.assert_close(load_image(str(path)), from_path)
    torch.testing.assert_close(load_image(from_path), from_path)  # (3, H, W) tensors pass through
    assert load_image(np.random.default_rng(0).random((12, 12))).shape == (3, 12, 12)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty or corrupt"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageError, match="empty or corrupt"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(ImageError, match="too small"):
        load_image(np.zeros((4, 64, 3), dtype=np.uint8))
    with pytest.raises(ImageError, match="empty"):
        load_image(np.zeros((0, 0, 3), dtype=np.uint8))
    with pytest.raises(ImageError, match="scale them"):
        load_image(np.full((16, 16, 3), 3.0))
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((16, 16, 3), np.nan))
    with pytest.raises(ImageError, match="not an image"):
        load_image(np.zeros((16, 16, 5)))
    with pytest.raises(ImageError, match="dtype"):
        load_image(np.zeros((16, 16, 3), dtype=object))


def test_shipped_photo_by_name_or_path(tmp_path):
    cat = photos.image("chelsea")
    assert cat.shape == (3, 300, 451) and cat.dtype == torch.float32 and 0 <= cat.min() < cat.max() <= 1
    torch.testing.assert_close(cat, image_tensor(photos.path("chelsea")))
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "black.png")
    assert photos.image(tmp_path / "black.png").shape == (3, 20, 30)
    with pytest.raises(UnknownNameError, match="neither a shipped photo.*astronaut, chelsea, coffee"):
        photos.image("astronat")
