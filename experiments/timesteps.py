"""Timestep sweeps on the world: how entropy, DiffSeg and DiffCut change with t, and the organism's t sets.

`timestep_sweep` scores both methods at every t from one capture per batch; `best_within_se` says which t an
argmax cannot tell apart; SMALL_T, LARGE_T and `best_small_large` are the organism's hierarchy target rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from zsnb import harness, hierarchy, organism, registry, world, worldeval
from zsnb.memory import DEFAULT_BUDGET_GB
from zsnb.protocol import NOISE_SEED, Backbone

# The timestep hierarchy is measured between these two sets (seeded noise): fine detail still stands above the
# noise at SMALL_T and only coarse structure at LARGE_T (notebook 00 plots both levels' signal-to-noise ratio).
SMALL_T: tuple[int, ...] = (0, 25, 50, 100)
LARGE_T: tuple[int, ...] = (300, 400, 500, 600, 700)
# Noise draws the hierarchy measurements average attention over (`zsnb.capture(..., draws=)`): under a single
# draw, the draw's own pattern splits an object's maps at large t (the sweeps in benchmarks/results/organism.md
# show both recipes).
HIERARCHY_DRAWS: int = 4


def best_small_large(by_t: Mapping[int, Mapping[str, float]], key: str) -> tuple[int, int]:
    """{t: scores} -> (t in SMALL_T, t in LARGE_T) of the highest `key` (e.g. "miou_parts") within each set."""
    return tuple(max(ts, key=lambda t: by_t[t][key]) for ts in (SMALL_T, LARGE_T))


def timestep_sweep(backbone: Backbone, seeds: Sequence[int], timesteps: Sequence[int], noise: str = "none",
                   seed: int = NOISE_SEED, batch: int | None = None, memory_gb: float = DEFAULT_BUDGET_GB,
                   size: int | None = None, diffseg: Mapping[str, Any] | None = None, draws: int = 1
                   ) -> dict[int, dict[str, Any]]:
    """Per t: mean layer entropy by side, DiffSeg and DiffCut (the backbone's parameters, t replaced) scores.

    One capture per batch holds every t (at `size`, default DiffSeg's input size), so both methods see the
    same input. diffseg: overrides of DiffSeg's record (e.g. the organism's hierarchy threshold); noise, seed
    and draws (noise draws averaged, `zsnb.capture`) are the sweep's for both methods.
    """
    ds = registry.params("diffseg", backbone).record.replace(**(diffseg or {}))
    dc = registry.params("diffcut", backbone).record
    size = size or ds.size
    convention = {"noise": noise, "seed": seed, "draws": draws, "size": size}
    settings = {t: [(name, record.replace(timestep=t, **convention)) for name, record in
                    (("diffseg", ds), ("diffcut", dc))] for t in timesteps}
    needs = harness.merge([record.needs() for pair in settings.values() for _, record in pair])
    preds: dict[int, dict[str, list]] = {t: {"diffseg": [], "diffcut": [], "entropy": []} for t in timesteps}
    scenes_all: list[world.Scene] = []
    for scenes, cap in worldeval.captures(backbone, seeds, needs, size, batch, False, memory_gb):
        scenes_all += scenes
        for t, pair in settings.items():
            for i, s in enumerate(scenes):
                for name, record in pair:
                    preds[t][name].append(registry.segment_capture(name, cap, i, record, s.objects.shape))
                preds[t]["entropy"].append(hierarchy.layer_entropy(cap.self_attention(t, i)))
    sides = {n: r for r, names in backbone.attention_layers("self").items() for n in names}
    out = {}
    for t, p in preds.items():
        by_side = {r: float(np.mean([e[n] for e in p["entropy"] for n in e if sides[n] == r]))
                   for r in sorted(set(sides.values()), reverse=True)}
        out[t] = {"entropy": by_side, "diffseg": worldeval.score(p["diffseg"], scenes_all),
                  "diffcut": worldeval.score(p["diffcut"], scenes_all)}
    return out


def best_within_se(by_t: Mapping[int, Mapping[str, float]], key: str) -> tuple[int, list[int]]:
    """{t: `score` dict} -> the t of highest mean `key`, and every t whose mean is within the best's s.e. of it.

    An argmax over a few scenes is only as sharp as its standard error: the second list says which t it does
    not tell apart from the best.
    """
    best = max(by_t, key=lambda t: by_t[t][key])
    floor = by_t[best][key] - by_t[best][f"{key}_se"]
    return best, [t for t in by_t if by_t[t][key] >= floor]


def sweep_diffseg(backbone: Backbone) -> dict[str, Any]:
    """DiffSeg's kl_threshold, num_points and seeded draws for a t sweep: the organism's "hierarchy" entry, else
    the backbone's defaults."""
    ds = registry.params("diffseg", backbone).record
    hier = organism.method_defaults().get("hierarchy", {}) if backbone.family == "organism" else {}
    return {k: hier.get(k, getattr(ds, k)) for k in ("kl_threshold", "num_points", "draws")}
