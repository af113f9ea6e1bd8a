"""Matched IoU of ground-truth segments by area: does the best t depend on a segment's size?"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from zsnb import metrics, world, worldeval
from zsnb.errors import ZsnbError

AREA_EDGES: tuple[int, ...] = (0, 32, 64, 128, 1 << 30)  # segment areas in pixels at 32x32: each bin holds objects


def area_label(b: Mapping[str, Any]) -> str:
    """An `iou_by_area` bin as text: "32-64 px", or "≥ 128 px" for the open last bin."""
    return f"{b['lo']}-{b['hi']} px" if b["hi"] < AREA_EDGES[-1] else f"≥ {b['lo']} px"


def iou_by_area(preds: Sequence[torch.Tensor | np.ndarray], scenes: Sequence[world.Scene], level: str = "objects",
                edges: Sequence[int] = AREA_EDGES) -> list[dict[str, float]]:
    """Mean matched IoU of GT segments (background excluded) binned by area: [{lo, hi, iou, se, n}] per bin."""
    if level not in worldeval.LEVELS:
        raise ZsnbError(f"level={level!r}; use one of {list(worldeval.LEVELS)}.")
    areas, ious = [], []
    for pred, s in zip(preds, scenes, strict=True):
        gt = getattr(s, level)
        ids, counts = np.unique(gt, return_counts=True)
        keep = ids != 0
        areas += list(counts[keep])
        ious += list(metrics.segment_ious(pred, gt)[keep])
    areas, ious = np.array(areas), np.array(ious)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        x = ious[(areas >= lo) & (areas < hi)]
        out.append({"lo": lo, "hi": hi, "n": int(x.size), "iou": float(x.mean()) if x.size else float("nan"),
                    "se": float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else float("nan")})
    return out
