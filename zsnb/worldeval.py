"""The world harness: capture batches of `zsnb.world` scenes, run registered methods, score both levels.

Each scene's ground-truth segments are its own classes (background included), matched to predicted
segments by per-image Hungarian matching (`zsnb.metrics.segment_scores`); numbers are means over scenes
with standard errors. Captures are batched: many scenes go through the UNet in one forward. Methods come
from `zsnb.registry` (`predict`, `evaluate`); the experiments built on them live here too: the timestep
sweep, static vs adaptive t* (`compare`, `paired_difference`), and the one score-table writer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from zsnb import hierarchy, metrics, organism, registry, world
from zsnb.backbones import Backbone
from zsnb.errors import ZsnbError
from zsnb.extract import NOISE_SEED, Capture, capture
from zsnb.images import load_image
from zsnb.memory import DEFAULT_BUDGET_GB, batch_size
from zsnb.metrics import segment_scores

LEVELS: tuple[str, ...] = ("objects", "parts")
COLUMNS: dict[str, str] = {"miou_objects": "mIoU objects", "miou_parts": "mIoU parts", "ari_objects": "ARI objects",
                           "ari_parts": "ARI parts", "segments": "segments"}


def scene_batches(seeds: Sequence[int], batch: int = 32, size: int = world.DEFAULT_SIZE
                  ) -> Iterator[list[world.Scene]]:
    """Scenes of `seeds` in lists of at most `batch`."""
    for i in range(0, len(seeds), batch):
        yield [world.scene(s, size) for s in seeds[i : i + batch]]


def walkthrough(seed: int, side: int, image_path: str | None = None) -> world.Scene:
    """The scene a notebook dissects: world scene `seed` drawn at `side`, or your photo (no ground truth) at side."""
    if image_path is None:
        return world.scene(seed, side)
    photo = load_image(image_path, side).permute(1, 2, 0).numpy()  # (side, side, 3), the official centre crop
    return world.Scene(photo, None, None, seed=-1)


def scene_tensor(scenes: Sequence[world.Scene]) -> torch.Tensor:
    """Images of scenes as a (N, 3, H, W) float tensor in [0, 1]."""
    return torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2)


def captures(backbone: Backbone, seeds: Sequence[int], timesteps: Sequence[int], batch: int | None = None,
             progress: bool = True, memory_gb: float = DEFAULT_BUDGET_GB, **capture_kwargs
             ) -> Iterator[tuple[list[world.Scene], Capture]]:
    """(scenes, capture of those scenes at all timesteps) for batches of `seeds`.

    Scenes are drawn at the capture's input size (capture_kwargs["size"], else the backbone's native side),
    so a Stable Diffusion backbone sees a 512 px scene, not a 32 px one upsampled. batch None: as many
    scenes as `memory_gb` holds (`zsnb.memory.batch_size`).
    """
    size = capture_kwargs.get("size") or backbone.resolution
    batch = batch or batch_size(backbone, size, len(timesteps), capture_kwargs.get("attention", "self"),
                                capture_kwargs.get("features", ()), memory_gb)
    batches = scene_batches(seeds, batch, size)
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


def method_captures(backbone: Backbone, method: str, seeds: Sequence[int], params: Mapping[str, Any],
                    batch: int | None = None, progress: bool = False,
                    memory_gb: float = DEFAULT_BUDGET_GB) -> Iterator[tuple[list[world.Scene], Capture]]:
    """(scenes, capture of what `method` needs with `params`, at params["size"]) for batches of `seeds`."""
    n = registry.get(method).needs(params)
    yield from captures(backbone, seeds, n.timesteps, batch, progress, memory_gb, noise=n.noise, seed=n.seed,
                        draws=n.draws, attention=n.attention, features=n.features, stop_after=n.stop_after,
                        size=params["size"])


def predict(backbone: Backbone, method: str, seeds: Sequence[int], batch: int | None = None, progress: bool = False,
            memory_gb: float = DEFAULT_BUDGET_GB, **overrides: Any) -> tuple[list[torch.Tensor], list[world.Scene]]:
    """Labels of registered `method` (its parameters on this backbone, overridden) for each scene, at its size."""
    params = registry.params(method, backbone, **overrides)
    segment = registry.get(method).segment_capture
    preds, scenes_all = [], []
    for scenes, cap in method_captures(backbone, method, seeds, params, batch, progress, memory_gb):
        preds += [segment(cap, i, params, s.objects.shape) for i, s in enumerate(scenes)]
        scenes_all += scenes
    return preds, scenes_all


def evaluate(backbone: Backbone, method: str, seeds: Sequence[int], batch: int | None = None, progress: bool = False,
             memory_gb: float = DEFAULT_BUDGET_GB, **overrides: Any) -> dict[str, float]:
    """`score` of registered `method` on the scenes of `seeds` (see `predict`)."""
    return score(*predict(backbone, method, seeds, batch, progress, memory_gb, **overrides))


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


def timestep_sweep(backbone: Backbone, seeds: Sequence[int], timesteps: Sequence[int], noise: str = "none",
                   seed: int = NOISE_SEED, batch: int | None = None, memory_gb: float = DEFAULT_BUDGET_GB,
                   size: int | None = None, diffseg: Mapping[str, Any] | None = None, draws: int = 1
                   ) -> dict[int, dict[str, Any]]:
    """Per t: mean layer entropy by side, DiffSeg and DiffCut (the backbone's parameters, t replaced) scores.

    One capture per batch holds every t (at `size`, default DiffSeg's input size), so both methods see the
    same input. diffseg: parameters overriding DiffSeg's (e.g. the organism's hierarchy threshold). draws: noise
    draws averaged (`zsnb.capture`).
    """
    ds, dc = {**registry.params("diffseg", backbone), **(diffseg or {})}, registry.params("diffcut", backbone)
    preds: dict[int, dict[str, list]] = {t: {"diffseg": [], "diffcut": [], "entropy": []} for t in timesteps}
    scenes_all: list[world.Scene] = []
    for scenes, cap in captures(backbone, seeds, tuple(timesteps), batch, False, memory_gb, noise=noise, seed=seed,
                                draws=draws, attention="self", features=(dc["tap"],), size=size or ds["size"]):
        scenes_all += scenes
        for t in timesteps:
            for i, s in enumerate(scenes):
                for name, p in (("diffseg", ds), ("diffcut", dc)):
                    preds[t][name].append(registry.get(name).segment_capture(cap, i, {**p, "timestep": t},
                                                                             s.objects.shape))
                preds[t]["entropy"].append(hierarchy.layer_entropy(cap, t, i))
    sides = {n: r for r, names in backbone.attention_layers("self").items() for n in names}
    out = {}
    for t, p in preds.items():
        by_side = {r: float(np.mean([e[n] for e in p["entropy"] for n in e if sides[n] == r]))
                   for r in sorted(set(sides.values()), reverse=True)}
        out[t] = {"entropy": by_side, "diffseg": score(p["diffseg"], scenes_all),
                  "diffcut": score(p["diffcut"], scenes_all)}
    return out


def best_within_se(by_t: Mapping[int, Mapping[str, float]], key: str) -> tuple[int, list[int]]:
    """{t: `score` dict} -> the t of highest mean `key`, and every t whose mean is within the best's s.e. of it.

    An argmax over a few scenes is only as sharp as its standard error: the second list says which t it does
    not tell apart from the best.
    """
    best = max(by_t, key=lambda t: by_t[t][key])
    floor = by_t[best][key] - by_t[best][f"{key}_se"]
    return best, [t for t in by_t if by_t[t][key] >= floor]


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


def compare(backbone: Backbone, seeds: Sequence[int], timesteps: Sequence[int],
            groupings: Sequence[str] = hierarchy.GROUPINGS, fusions: Sequence[str] = ("attention", "reweight"),
            criteria: Sequence[str] = hierarchy.CRITERIA, targets: Sequence[str | None] = (None,),
            params: Mapping[str, Mapping[str, Any]] | None = None, features_tap: str | None = None,
            temperature: float = hierarchy.DEFAULT_TEMPERATURE, noise: str = "none", seed: int = NOISE_SEED,
            batch: int | None = None, memory_gb: float = DEFAULT_BUDGET_GB, size: int | None = None, draws: int = 1
            ) -> tuple[dict[Setting, dict[str, float]], dict[Setting, list[torch.Tensor]], list[world.Scene]]:
    """(scores, label maps, scenes) of static-t and adaptive-t* groupings, one multi-t capture per batch.

    Keyed by `Setting`: every static t and every (criterion, target), per fusion and grouping. Scores as
    `score`; params {grouping: parameters} default to the registry's DiffSeg and DiffCut parameters. draws:
    noise draws averaged (`zsnb.capture`).
    """
    params = params or {"diffseg": registry.params("diffseg", backbone), "ncut": registry.params("diffcut", backbone)}
    tap = features_tap or registry.params("diffcut", backbone)["tap"]
    ts = sorted(timesteps)
    preds: dict[Setting, list[torch.Tensor]] = {}
    scenes_all: list[world.Scene] = []
    for scenes, cap in captures(backbone, seeds, ts, batch, False, memory_gb, noise=noise, seed=seed, draws=draws,
                                attention="self", features=(tap,), size=size):
        scenes_all += scenes
        for i, s in enumerate(scenes):
            side = s.objects.shape
            for fusion in fusions:
                maps = {t: hierarchy.contextual_similarity(cap, t, i, fusion, tap, temperature) for t in ts}
                for grouping in groupings:
                    for t in ts:
                        preds.setdefault(Setting(fusion, grouping, t), []).append(
                            hierarchy.group(maps[t], grouping, side, params[grouping]))
                    for criterion in criteria:
                        for target in targets:
                            fused = hierarchy.select_timesteps(maps, criterion, target)[1]
                            preds.setdefault(Setting(fusion, grouping, None, criterion, target), []).append(
                                hierarchy.group(fused, grouping, side, params[grouping]))
    return {k: score(p, scenes_all) for k, p in preds.items()}, preds, scenes_all


AREA_EDGES: tuple[int, ...] = (0, 32, 64, 128, 1 << 30)  # segment areas in pixels at 32x32: each bin holds objects


def area_label(b: Mapping[str, Any]) -> str:
    """An `iou_by_area` bin as text: "32-64 px", or "≥ 128 px" for the open last bin."""
    return f"{b['lo']}-{b['hi']} px" if b["hi"] < AREA_EDGES[-1] else f"≥ {b['lo']} px"


def iou_by_area(preds: Sequence[torch.Tensor | np.ndarray], scenes: Sequence[world.Scene], level: str = "objects",
                edges: Sequence[int] = AREA_EDGES) -> list[dict[str, float]]:
    """Mean matched IoU of GT segments (background excluded) binned by area: [{lo, hi, iou, se, n}] per bin."""
    if level not in LEVELS:
        raise ZsnbError(f"level={level!r}; use one of {list(LEVELS)}.")
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


def beats(diff: float, se: float, gain: float = 0.03, n_se: float = 3.0) -> bool:
    """Whether a paired difference (mean, standard error) clears `gain` and `n_se` standard errors.

    The defaults are the organism's adaptive target: adaptive t* against the static t chosen on training scenes.
    """
    return diff >= gain and diff > n_se * se


def sweep_diffseg(backbone: Backbone) -> dict[str, Any]:
    """DiffSeg's kl_threshold, num_points and seeded draws for a t sweep: the organism's "hierarchy" entry, else
    the backbone's defaults."""
    ds = registry.params("diffseg", backbone)
    hier = organism.method_defaults().get("hierarchy", {}) if backbone.family == "organism" else {}
    return {k: hier.get(k, ds[k]) for k in ("kl_threshold", "num_points", "draws")}


def paired_difference(preds_a: Sequence[torch.Tensor], preds_b: Sequence[torch.Tensor],
                      scenes: Sequence[world.Scene], level: str = "objects") -> tuple[float, float]:
    """Mean and standard error over scenes of mIoU(a) - mIoU(b) against one ground-truth level."""
    if level not in LEVELS:
        raise ZsnbError(f"level={level!r}; use one of {list(LEVELS)}.")
    d = np.array([metrics.segment_miou(a, getattr(s, level)) - metrics.segment_miou(b, getattr(s, level))
                  for a, b, s in zip(preds_a, preds_b, scenes, strict=True)])
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
