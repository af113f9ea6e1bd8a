"""Scoring segmentations of `zsnb.world` scenes against both ground-truth levels (objects and parts).

Each scene's ground-truth segments are its own classes (background included), matched to predicted
segments by per-image Hungarian matching (`zsnb.metrics.segment_scores`); numbers are means over scenes
with standard errors. Captures are batched: many scenes go through the UNet in one forward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from zsnb import world
from zsnb.backbones import Backbone
from zsnb.capture import Capture, capture
from zsnb.metrics import segment_scores

LEVELS: tuple[str, ...] = ("objects", "parts")


def scene_batches(seeds: Sequence[int], batch: int = 32, size: int = world.DEFAULT_SIZE
                  ) -> Iterator[list[world.Scene]]:
    """Scenes of `seeds` in lists of at most `batch`."""
    for i in range(0, len(seeds), batch):
        yield [world.scene(s, size) for s in seeds[i : i + batch]]


def scene_tensor(scenes: Sequence[world.Scene]) -> torch.Tensor:
    """Images of scenes as a (N, 3, H, W) float tensor in [0, 1]."""
    return torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2)


def captures(backbone: Backbone, seeds: Sequence[int], timesteps: Sequence[int], batch: int = 32,
             progress: bool = True, **capture_kwargs) -> Iterator[tuple[list[world.Scene], Capture]]:
    """(scenes, capture of those scenes at all timesteps) for batches of `seeds`."""
    batches = scene_batches(seeds, batch)
    for scenes in tqdm(batches, total=-(-len(seeds) // batch), desc="capture", disable=not progress):
        yield scenes, capture(backbone, scene_tensor(scenes), timesteps, **capture_kwargs)


def scene_scores(pred: torch.Tensor | np.ndarray, objects: np.ndarray, parts: np.ndarray) -> dict[str, float]:
    """(H, W) pred vs (H, W) objects and parts -> mIoU, acc, ARI, n_pred per level (keys like miou_objects)."""
    return {f"{k}_{level}": v for level, gt in zip(LEVELS, (objects, parts), strict=True)
            for k, v in segment_scores(pred, gt).items()}


def mean_se(rows: Sequence[dict[str, float]], keys: Sequence[str]) -> dict[str, float]:
    """Mean over rows of each key and its standard error (key_se; NaN for a single row)."""
    out = {}
    for key in keys:
        vals = np.array([r[key] for r in rows], dtype=float)
        out[key] = float(vals.mean())
        out[f"{key}_se"] = float(vals.std(ddof=1) / np.sqrt(len(vals))) if len(vals) > 1 else float("nan")
    return out


def score(preds: Sequence[torch.Tensor | np.ndarray], scenes: Sequence[world.Scene]) -> dict[str, float]:
    """Mean and standard error over scenes of mIoU and ARI against both levels, and segment counts."""
    rows = [scene_scores(p, s.objects, s.parts) for p, s in zip(preds, scenes, strict=True)]
    for r in rows:
        r["segments"] = r["n_pred_objects"]
    out: dict[str, float] = {"n_scenes": len(rows),
                             **mean_se(rows, ("miou_objects", "miou_parts", "ari_objects", "ari_parts", "segments"))}
    out["gt_objects"] = float(np.mean([len(np.unique(s.objects)) for s in scenes]))
    out["gt_parts"] = float(np.mean([len(np.unique(s.parts)) for s in scenes]))
    return out


def evaluate(segmenter: Callable[[Capture, int, int], torch.Tensor], backbone: Backbone, seeds: Sequence[int],
             timestep: int, batch: int = 32, progress: bool = True, **capture_kwargs) -> dict[str, float]:
    """Score `segmenter(capture, timestep, index) -> (H, W) labels` on the scenes of `seeds`."""
    preds, scenes_all = [], []
    for scenes, cap in captures(backbone, seeds, (timestep,), batch, progress, **capture_kwargs):
        preds += [segmenter(cap, timestep, i) for i in range(len(scenes))]
        scenes_all += scenes
    return score(preds, scenes_all)
