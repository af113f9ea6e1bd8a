"""Images in, tensors out: any image source as float RGB in [0, 1], and the one way it meets a backbone.

`load_image` is the input convention of every method, capture and command: the whole image is resized to the
backbone's square input (no crop), so every pixel of the image gets a label when the labels are resized
back. The papers' evaluation protocol keeps its own square crop (`center_crop`, used by `zsnb.data.prepare`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from zsnb.errors import ImageError

MIN_SIDE = 8  # below this no backbone has a single attention token left
ImageLike = str | Path | Image.Image | np.ndarray | torch.Tensor


def _to_array(src: ImageLike) -> np.ndarray:
    """Any supported source as an (H, W, C) or (H, W) float64 array in [0, 1]."""
    if isinstance(src, str | Path):
        path = Path(src)
        if not path.exists():
            raise ImageError(f"image file {path} does not exist; pass an existing path, a PIL image or an array.")
        try:
            with Image.open(io.BytesIO(path.read_bytes())) as im:
                im.load()
                src = im.copy()
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ImageError(f"image file {path} is empty or corrupt ({err}); re-export it as PNG or JPEG.") from err
    if isinstance(src, Image.Image):
        if src.mode in ("I;16", "I;16B", "I;16L", "I"):
            src = np.asarray(src, dtype=np.float64) / (65535.0 if src.mode != "I" else max(np.asarray(src).max(), 1))
        elif src.mode in ("RGBA", "LA", "P", "PA", "CMYK", "YCbCr", "L", "1", "RGB", "F"):
            src = np.asarray(src.convert("RGB"), dtype=np.float64) / 255.0
        else:
            raise ImageError(f"unsupported PIL image mode {src.mode!r}; convert it with image.convert('RGB').")
    if isinstance(src, torch.Tensor):
        src = src.detach().cpu().numpy()
        if src.ndim == 3 and src.shape[0] in (1, 3, 4) and src.shape[-1] not in (1, 3, 4):
            src = src.transpose(1, 2, 0)  # tensors come channels-first
    arr = np.asarray(src)
    if arr.dtype == np.uint8:
        arr = arr / 255.0
    elif arr.dtype == np.uint16:
        arr = arr / 65535.0
    elif not np.issubdtype(arr.dtype, np.floating):
        raise ImageError(f"unsupported array dtype {arr.dtype}; pass uint8, uint16 or float in [0, 1].")
    return arr.astype(np.float64)


def _as_rgb(arr: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1|3|4) to (H, W, 3); alpha is composited on black, as PIL's convert does."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise ImageError(f"image of shape {arr.shape} is not an image; expected (H, W), (H, W, 3|4) or (3, H, W).")
    if arr.shape[-1] == 4:
        arr = arr[..., :3] * arr[..., 3:]
    return np.repeat(arr, 3, axis=-1) if arr.shape[-1] == 1 else arr


def image_tensor(src: ImageLike) -> torch.Tensor:
    """Any supported image as a (3, H, W) float32 tensor in [0, 1] at its own size, validated."""
    arr = _as_rgb(_to_array(src))
    h, w = arr.shape[:2]
    if h == 0 or w == 0:
        raise ImageError("image is empty (0 pixels); check the file or array you passed.")
    if not np.isfinite(arr).all():
        raise ImageError("image contains NaN or Inf values; clean it before segmenting.")
    if arr.min() < -1e-6 or arr.max() > 1 + 1e-6:
        raise ImageError(f"float image values span [{arr.min():.3g}, {arr.max():.3g}]; scale them to [0, 1].")
    if min(h, w) < MIN_SIDE:
        raise ImageError(f"image is {h}x{w}, too small: the shorter side must be at least {MIN_SIDE} pixels.")
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float()


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> (3, *size): bilinear without antialiasing, like tf.image.resize in DiffSeg's code."""
    if tuple(image.shape[1:]) == tuple(size):
        return image
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0].clamp(0, 1)


def center_crop(image: torch.Tensor, shrink: int = 0) -> torch.Tensor:
    """(C, H, W) or (H, W) -> the centred square of side min(H, W) - shrink (the papers' evaluation crop)."""
    h, w = image.shape[-2:]
    side = min(h, w) - shrink
    top, left = (h - side) // 2, (w - side) // 2
    return image[..., top : top + side, left : left + side]


def load_image(src: ImageLike, size: int | None = None) -> torch.Tensor:
    """Any image -> (3, size, size) float32 in [0, 1]: the whole image resized to the square (size=None: as is)."""
    tensor = image_tensor(src)
    if size is None:
        return tensor
    if size < MIN_SIDE:
        raise ImageError(f"size={size} is too small; use at least {MIN_SIDE} (backbones use their resolution).")
    return resize(tensor, (size, size))


def load_batch(images: ImageLike | Sequence[ImageLike], size: int) -> torch.Tensor:
    """One image, a list of them or an (N, 3, H, W) tensor -> (N, 3, size, size), each through `load_image`."""
    if isinstance(images, list | tuple):
        if not images:
            raise ImageError("image is an empty list; pass at least one image.")
        return torch.stack([load_image(im, size) for im in images])
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        return torch.stack([load_image(im, size) for im in images])
    return load_image(images, size)[None]

