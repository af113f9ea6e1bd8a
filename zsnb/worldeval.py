"""Scoring on the world: registered methods on `zsnb.world` scenes, against both ground-truth levels.

Each scene's ground-truth segments are its own classes (background included), matched to predicted
segments by per-image Hungarian matching (`zsnb.metrics.segment_scores`); numbers are means over scenes
with standard errors. Scenes are drawn at the input size of the settings that read them, and go through
`zsnb.harness` (one capture per capture setting and batch). The experiments built on this (sweeps,
comparisons, tuning) live in the repository's `experiments/` folder.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from tqdm import tqdm  # text bar: a stored notebook keeps its final state, not an empty widget

from zsnb import harness, registry, world
from zsnb.errors import ZsnbError
from zsnb.images import load_image
from zsnb.memory import DEFAULT_BUDGET_GB
from zsnb.metrics import segment_scores
from zsnb.protocol import Backbone, Capture, Needs

LEVELS: tuple[str, ...] = ("objects", "parts")
COLUMNS: dict[str, str] = {"miou_objects": "mIoU objects", "miou_parts": "mIoU parts", "ari_objects": "ARI objects",
                           "ari_parts": "ARI parts", "segments": "segments"}


def walkthrough(seed: int, side: int, image_path: str | None = None) -> world.Scene:
    """The scene a notebook dissects: world scene `seed` drawn at `side`, or your photo (no ground truth) at side."""
    if image_path is None:
        return world.scene(seed, side)
    photo = load_image(image_path, side).permute(1, 2, 0).numpy()  # (side, side, 3), the whole photo resized
    return world.Scene(photo, None, None, seed=-1)


def scene_tensor(scenes: Sequence[world.Scene]) -> torch.Tensor:
    """Images of scenes as a (N, 3, H, W) float tensor in [0, 1]."""
    return torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2)


def bar(iterable: Any = None, **kwargs: Any) -> tqdm:
    """A text progress bar that a stored notebook keeps legibly: nothing drawn for work done within a second (a
    resumed run with nothing left shows no bar stuck at 0/N), and off a terminal (a notebook stores every redraw
    as a line) one redraw per 30 s instead of per 0.1 s."""
    return tqdm(iterable, delay=1, mininterval=1 if sys.stderr.isatty() else 30, **kwargs)


def captures(backbone: Backbone, seeds: Sequence[int], needs: Needs, size: int | None = None,
             batch: int | None = None, progress: bool = True, memory_gb: float = DEFAULT_BUDGET_GB
             ) -> Iterator[tuple[list[world.Scene], Capture]]:
    """(scenes, their capture) for batches of `seeds`, scenes drawn at `size` (default the backbone's side).

    Scenes are drawn at the input size, so a Stable Diffusion backbone sees a 512 px scene, not a 32 px one
    upsampled. batch None: as many scenes as `memory_gb` holds (`zsnb.memory.batch_size`).
    """
    scenes = [world.scene(s, size or backbone.resolution) for s in seeds]
    batches = harness.captures(backbone, scene_tensor(scenes), needs, batch, memory_gb)
    with bar(total=len(scenes), desc="capture", unit="scene", disable=not progress) as progress_bar:
        for rows, cap in batches:
            yield [scenes[i] for i in rows], cap
            progress_bar.update(len(rows))


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


def predict_grid(backbone: Backbone, seeds: Sequence[int], settings: Sequence[harness.Setting],
                 batch: int | None = None, memory_gb: float = DEFAULT_BUDGET_GB
                 ) -> tuple[list[list[torch.Tensor]], list[world.Scene]]:
    """Labels[setting][scene] of (method, record) settings sharing one input size, and the scenes of `seeds`."""
    sizes = {record.size for _, record in settings}
    if len(sizes) != 1:
        raise ZsnbError(f"settings feed sizes {sorted(sizes)}; call once per size.")
    size = sizes.pop()
    scenes = [world.scene(s, size) for s in seeds]
    return harness.segment_grid(backbone, scene_tensor(scenes), settings, batch=batch, memory_gb=memory_gb), scenes


def predict(backbone: Backbone, method: str, seeds: Sequence[int], batch: int | None = None,
            memory_gb: float = DEFAULT_BUDGET_GB, **overrides: Any) -> tuple[list[torch.Tensor], list[world.Scene]]:
    """Labels of registered `method` (its parameters on this backbone, overridden) for each scene, at its size."""
    record = registry.params(method, backbone, **overrides).record
    preds, scenes = predict_grid(backbone, seeds, [(method, record)], batch, memory_gb)
    return preds[0], scenes


def evaluate(backbone: Backbone, method: str, seeds: Sequence[int], batch: int | None = None,
             memory_gb: float = DEFAULT_BUDGET_GB, **overrides: Any) -> dict[str, float]:
    """`score` of registered `method` on the scenes of `seeds` (see `predict`)."""
    return score(*predict(backbone, method, seeds, batch, memory_gb, **overrides))


def score_table(rows: Mapping[str, Mapping[str, float]], label: str = "method",
                columns: Sequence[str] = ("miou_objects", "miou_parts", "ari_objects", "segments"),
                with_se: Sequence[str] = ("miou_objects", "miou_parts")) -> str:
    """{name: `score` dict} -> a Markdown table; `with_se` columns show ± their standard error."""
    def cell(r: Mapping[str, float], key: str) -> str:
        text = f"{r[key]:.1f}" if key == "segments" else f"{r[key]:.3f}"
        return f"{text} ± {r[key + '_se']:.3f}" if key in with_se and f"{key}_se" in r else text

    lines = [f"| {label} | " + " | ".join(COLUMNS.get(c, c) for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
    lines += [f"| {name} | " + " | ".join(cell(r, c) for c in columns) + " |" for name, r in rows.items()]
    return "\n".join(lines)
