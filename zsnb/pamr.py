"""PAMR: pixel-adaptive mask refinement, as DiffCut applies it to its label maps.

Araslanov & Roth, "Single-Stage Semantic Segmentation from Image Labels", CVPR 2020 (code:
visinf/1-stage-wseg, copied into DiffCut's tools/pamr.py). Each pixel's mask becomes a weighted average
of its 8 neighbours at every dilation; the weights are a softmax of -|colour difference| scaled by the
local colour spread, so labels flow along regions of similar colour and stop at edges. DiffCut then
takes the argmax and applies a 3 x 3 median filter. The median ranks label values, as the official code
does (one mask per label in increasing order), so the output depends on how labels are numbered: DiffCut's
are numbered as the official code numbers them (`zsnb.diffcut.leaf_labels`).

Official settings in DiffCut's eval: 10 iterations, dilations (1, 2, 4, 8), at 128 x 128.
Same arithmetic as the official module (replicate padding, unbiased std over the 9 taps of every
dilation, centre included); neighbours are summed one at a time instead of stacked as a
(K, 8 * len(dilations), H, W) tensor, so memory stays O(K H W) at full resolution.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
import torch
from torch import Tensor

from zsnb.errors import ZsnbError
from zsnb.precision import as_real

STD_EPS: float = 1e-8  # official: keeps flat regions (std 0) finite
STD_SCALE: float = 0.1  # official: colour differences are measured in tenths of the local std
MEDIAN_SIZE: int = 3  # official: 3 x 3 median filter after the argmax
OFFSETS: tuple[tuple[int, int], ...] = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))  # 3 x 3 taps


def _taps(x: Tensor, dilation: int, centre: bool) -> list[Tensor]:
    """x (C, H, W) -> the 8 neighbours (9 with centre) at this dilation, each (C, H, W), edges replicated."""
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x[None], [dilation] * 4, mode="replicate")[0]  # (C, H + 2d, W + 2d)
    starts = [(dilation * (1 + dy), dilation * (1 + dx)) for dy, dx in OFFSETS if centre or dy or dx]
    return [padded[:, y:y + h, x0:x0 + w] for y, x0 in starts]


def pamr_weights(image: Tensor, dilations: tuple[int, ...]) -> Tensor:
    """Image (3, H, W) -> (8 * len(dilations), H, W) neighbour weights, each pixel's summing to 1."""
    spread = [tap for d in dilations for tap in _taps(image, d, centre=True)]  # 9 per dilation
    mean = sum(spread) / len(spread)
    std = (sum((tap - mean) ** 2 for tap in spread) / (len(spread) - 1)).sqrt()  # (3, H, W), unbiased
    scale = STD_EPS + STD_SCALE * std
    logits = torch.stack([-((image - tap).abs() / scale).mean(0)  # averaged over RGB
                          for d in dilations for tap in _taps(image, d, centre=False)])
    return logits.softmax(0)


def _check(image: Tensor, labels: Tensor, iterations: int, dilations: tuple[int, ...]) -> None:
    """Raise ZsnbError naming the first bad argument of `pamr`."""
    if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] != 3:
        raise ZsnbError(f"image must be a (3, H, W) tensor in [0, 1]; got "
                         f"{getattr(image, 'shape', type(image).__name__)}.")
    if not torch.isfinite(image).all():
        raise ZsnbError("image contains NaN or Inf; pass a finite RGB image in [0, 1].")
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.shape != image.shape[1:]:
        got = getattr(labels, "shape", type(labels).__name__)
        raise ZsnbError(f"labels must be an integer tensor of shape {tuple(image.shape[1:])} (the image's "
                         f"H, W); got {got}: resize one to the other.")
    if not isinstance(iterations, int) or iterations < 0:
        raise ZsnbError(f"iterations={iterations!r} must be an int >= 0 (DiffCut eval: 10).")
    if not dilations or not all(isinstance(d, int) and d > 0 for d in dilations):
        raise ZsnbError(f"dilations={dilations!r} must be a non-empty tuple of positive ints, "
                         "e.g. (1, 2, 4, 8).")


def pamr(image: Tensor, labels: Tensor, iterations: int = 10,
         dilations: tuple[int, ...] = (1, 2, 4, 8)) -> Tensor:
    """Image (3, H, W) in [0, 1], labels (H, W) long -> (H, W) long: PAMR, argmax, 3 x 3 median."""
    dilations = tuple(dilations)
    _check(image, labels, iterations, dilations)
    image = as_real(image)
    ids, inverse = labels.unique(return_inverse=True)  # sorted ids: the median of indices maps to that of ids
    masks = torch.nn.functional.one_hot(inverse, len(ids)).permute(2, 0, 1).to(image.dtype)  # (K, H, W)
    weights = pamr_weights(image, dilations)  # (P, H, W)
    for _ in range(iterations):
        taps = [tap for d in dilations for tap in _taps(masks, d, centre=False)]  # P x (K, H, W)
        masks = sum(wt * tap for wt, tap in zip(weights, taps, strict=True))
    best = masks.argmax(0).cpu().numpy()
    smooth = scipy.ndimage.median_filter(best, size=MEDIAN_SIZE)
    return ids[torch.from_numpy(smooth.astype(np.int64)).to(ids.device)]
