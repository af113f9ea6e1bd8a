"""Static t against per-pixel adaptive t* on the world (`zsnb.hierarchy`), and the paired test behind the target.

`compare` groups every static t and every adaptive rule from one multi-t capture per batch; `paired_difference`
and `beats` decide whether one configuration beats another on the same scenes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zsnb import hierarchy, metrics, registry, world, worldeval
from zsnb.errors import ZsnbError
from zsnb.memory import DEFAULT_BUDGET_GB
from zsnb.parameters import Params
from zsnb.protocol import NOISE_SEED, Backbone, Needs

_GROUPING_KEYS: dict[str, tuple[str, ...]] = {"diffseg": ("kl_threshold", "num_points", "iterations"),
                                              "ncut": ("tau", "alpha")}  # what `hierarchy.group` reads of a record


@dataclass(frozen=True)
class Setting:
    """One configuration of `compare`: a static timestep t, or adaptive t* (criterion, target) when t is None."""

    fusion: str
    grouping: str
    t: int | None = None
    criterion: str | None = None
    target: str | None = None

    def __str__(self) -> str:
        if self.t is not None:
            return f"static t={self.t} | {self.fusion} | {self.grouping}"
        name = self.criterion if self.target is None else f"{self.criterion}/{self.target}"
        return f"adaptive {name} | {self.fusion} | {self.grouping}"


def _grouping_values(grouping: str, record: Params) -> dict[str, Any]:
    """The keywords `hierarchy.group` takes for `grouping` ("diffseg" or "ncut"), read from a method's record."""
    return {k: getattr(record, k) for k in _GROUPING_KEYS[grouping]}


def compare(backbone: Backbone, seeds: Sequence[int], timesteps: Sequence[int],
            groupings: Sequence[str] = hierarchy.GROUPINGS, fusions: Sequence[str] = ("attention", "reweight"),
            criteria: Sequence[str] = hierarchy.CRITERIA, targets: Sequence[str | None] = (None,),
            params: Mapping[str, Params] | None = None, features_tap: str | None = None,
            temperature: float = hierarchy.DEFAULT_TEMPERATURE, noise: str = "none", seed: int = NOISE_SEED,
            batch: int | None = None, memory_gb: float = DEFAULT_BUDGET_GB, size: int | None = None, draws: int = 1
            ) -> tuple[dict[Setting, dict[str, float]], dict[Setting, list[torch.Tensor]], list[world.Scene]]:
    """(scores, label maps, scenes) of static-t and adaptive-t* groupings, one multi-t capture per batch.

    Keyed by `Setting`: every static t and every (criterion, target), per fusion and grouping. Scores as
    `worldeval.score`; params {"diffseg": DiffSegParams, "ncut": DiffCutParams} (default: the registry's on
    this backbone) give the groupings their values. draws: noise draws averaged.
    """
    unknown = [g for g in groupings if g not in hierarchy.GROUPINGS]
    if unknown:
        raise ZsnbError(f"grouping {unknown}; use some of {list(hierarchy.GROUPINGS)}.")
    params = params or {"diffseg": registry.params("diffseg", backbone).record,
                        "ncut": registry.params("diffcut", backbone).record}
    values = {g: _grouping_values(g, params[g]) for g in groupings}
    tap = features_tap or registry.params("diffcut", backbone).record.tap
    ts = sorted(timesteps)
    needs = Needs(tuple(ts), noise, seed, draws, attention="self", features=(tap,))
    preds: dict[Setting, list[torch.Tensor]] = {}
    scenes_all: list[world.Scene] = []
    for scenes, cap in worldeval.captures(backbone, seeds, needs, size, batch, False, memory_gb):
        scenes_all += scenes
        for i, s in enumerate(scenes):
            side = s.objects.shape
            for fusion in fusions:
                maps = {t: hierarchy.contextual_similarity(cap.self_attention(t, i), cap.features(t, tap, i), fusion,
                                                           temperature) for t in ts}
                for grouping in groupings:
                    for t in ts:
                        preds.setdefault(Setting(fusion, grouping, t), []).append(
                            hierarchy.group(maps[t], grouping, side, **values[grouping]))
                    for criterion in criteria:
                        for target in targets:
                            fused = hierarchy.select_timesteps(maps, criterion, target)[1]
                            preds.setdefault(Setting(fusion, grouping, None, criterion, target), []).append(
                                hierarchy.group(fused, grouping, side, **values[grouping]))
    return {k: worldeval.score(p, scenes_all) for k, p in preds.items()}, preds, scenes_all


def paired_difference(preds_a: Sequence[torch.Tensor], preds_b: Sequence[torch.Tensor],
                      scenes: Sequence[world.Scene], level: str = "objects") -> tuple[float, float]:
    """Mean and standard error over scenes of mIoU(a) - mIoU(b) against one ground-truth level."""
    if level not in worldeval.LEVELS:
        raise ZsnbError(f"level={level!r}; use one of {list(worldeval.LEVELS)}.")
    d = np.array([metrics.segment_miou(a, getattr(s, level)) - metrics.segment_miou(b, getattr(s, level))
                  for a, b, s in zip(preds_a, preds_b, scenes, strict=True)])
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")


def beats(diff: float, se: float, gain: float = 0.03, n_se: float = 3.0) -> bool:
    """Whether a paired difference (mean, standard error) clears `gain` and `n_se` standard errors.

    The defaults are the organism's adaptive target: adaptive t* against the static t chosen on training scenes.
    """
    return diff >= gain and diff > n_se * se
