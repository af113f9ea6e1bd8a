"""Per-token timesteps on the world: oracles that bound the gain, pipelines that use a t map, fair controls.

Every arm is a function of one scene's captured maps and a grouping threshold θ -> labels, so each gets its
own θ chosen on training scenes (`tune`) and a threshold-free score (`auc`: mean mIoU over the θ grid). The
timestep ladder holds one static segmentation per t; the threshold ladder (the control) one per θ at a fixed
t: a gain belongs to the timestep only if it beats the same selection over thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from zsnb import hierarchy, metrics, timemap, world, worldeval
from zsnb.errors import ZsnbError
from zsnb.memory import DEFAULT_BUDGET_GB
from zsnb.protocol import NOISE_SEED, Backbone, Needs

PIPELINES: dict[str, tuple[str, ...]] = {g: tuple(p for p in hierarchy.PIPELINES if g == "ncut" or p != "pairwise")
                                         for g in hierarchy.GROUPINGS}  # pairwise compares by NCut affinity


@dataclass
class SceneMaps:
    """One scene's aggregated self-attention per t, (T, N, N), and feature taps per t, {tap: (T, h, w, C)}."""

    scene: world.Scene
    maps: torch.Tensor
    taps: dict[str, torch.Tensor] = field(default_factory=dict)
    cache: dict = field(default_factory=dict)  # static label ladders, keyed by (grouping, θ, ...)

    @property
    def hw(self) -> tuple[int, int]:
        return tuple(self.scene.objects.shape)

    def gt(self, level: str) -> np.ndarray:
        return getattr(self.scene, level)


def capture(backbone: Backbone, seeds: Sequence[int], timesteps: Sequence[int], draws: int, taps: Sequence[str] = (),
            noise: str = "seeded", seed: int = NOISE_SEED, progress: bool = False, size: int | None = None,
            memory_gb: float = DEFAULT_BUDGET_GB, batch: int | None = None) -> list[SceneMaps]:
    """One capture per batch of every t: each scene's DiffSeg aggregate per t (T, N, N) and its taps.

    batch None: as many scenes as memory_gb holds; the kept maps (T * N * N floats per scene) come on top.
    """
    ts = sorted(timesteps)
    needs = Needs(tuple(ts), noise, seed, draws, attention="self", features=tuple(taps))
    out = []
    for scenes, cap in worldeval.captures(backbone, seeds, needs, size, batch, progress, memory_gb):
        for i, s in enumerate(scenes):
            maps = torch.stack([hierarchy.contextual_similarity(cap.self_attention(t, i), None, "attention")
                                for t in ts]).float()
            feats = {tap: torch.stack([cap.features(t, tap, i) for t in ts]).float() for tap in taps}
            out.append(SceneMaps(s, maps, feats))
    return out


def with_theta(grouping: str, theta: float, values: Mapping) -> dict:
    """The grouping's keyword values with θ as its threshold (DiffSeg kl_threshold, NCut tau)."""
    return {**values, "kl_threshold" if grouping == "diffseg" else "tau": theta}


def group(maps: torch.Tensor, grouping: str, theta: float, hw: tuple[int, int], values: Mapping) -> torch.Tensor:
    """(N, N) maps -> (H, W) labels by DiffSeg's merge or NCut at threshold θ."""
    return hierarchy.group(maps, grouping, hw, **with_theta(grouping, theta, values))


def ladder(sm: SceneMaps, grouping: str, theta: float, values: Mapping) -> torch.Tensor:
    """(T, H, W) static labels of every t at one θ (cached on the scene)."""
    key = ("t", grouping, theta)
    if key not in sm.cache:
        sm.cache[key] = hierarchy.ladder(sm.maps, grouping, sm.hw, **with_theta(grouping, theta, values))
    return sm.cache[key]


def theta_ladder(sm: SceneMaps, grouping: str, k: int, thetas: Sequence[float], values: Mapping) -> torch.Tensor:
    """(len(thetas), H, W) labels at the k-th t for each θ, ordered from the finest to the coarsest grouping."""
    key = ("theta", grouping, k, tuple(thetas))
    if key not in sm.cache:
        order = sorted(thetas) if grouping == "diffseg" else sorted(thetas, reverse=True)  # NCut: small τ = coarse
        sm.cache[key] = torch.stack([ladder(sm, grouping, th, values)[k] for th in order])
    return sm.cache[key]


def miou(labels: torch.Tensor, sm: SceneMaps, level: str) -> float:
    """Instance mIoU of one scene's labels at a level ("objects" or "parts")."""
    return metrics.segment_miou(labels, sm.gt(level))


def object_oracle(rungs: torch.Tensor, gt: np.ndarray, prefer: int = 0) -> tuple[torch.Tensor, dict[int, int]]:
    """(K, H, W) labels per rung, (H, W) ground truth -> ((H, W) best rung per pixel, {gt id: best rung}).

    Each GT region takes the rung where its Hungarian-matched IoU is highest; among equal IoUs the rung nearest
    `prefer` (the static choice), so the oracle departs from the static t only where that helps.
    """
    ious = np.stack([metrics.segment_ious(r, gt) for r in rungs])  # (K, n_ids)
    ids = np.unique(gt)
    distance = np.abs(np.arange(len(rungs)) - prefer)
    best = {int(i): int(np.lexsort((distance, -ious[:, j].round(9)))[0]) for j, i in enumerate(ids)}
    lut = torch.zeros(int(ids.max()) + 1, dtype=torch.long)
    for i, k in best.items():
        lut[i] = k
    return lut[torch.from_numpy(gt).long()], best


def compose(rungs: torch.Tensor, gt: np.ndarray, best: Mapping[int, int]) -> torch.Tensor:
    """Label-composition ceiling (leaks ground-truth boundaries): each GT region takes its best rung's labels."""
    out = torch.zeros(rungs.shape[1:], dtype=torch.long)
    gt_t = torch.from_numpy(gt).long()
    offset = 0
    for i, k in best.items():
        inside = gt_t == i
        out[inside] = rungs[k][inside] + offset
        offset += int(rungs[k].max()) + 1
    return out


def to_tokens(pixel_map: torch.Tensor, R: int) -> torch.Tensor:
    """(H, W) per-pixel t map -> (R*R,) at token centres."""
    return timemap.token_labels(pixel_map, R)


def run(sm: SceneMaps, grouping: str, pipeline: str, choice: torch.Tensor, theta: float, values: Mapping
        ) -> torch.Tensor:
    """Labels (H, W) of one pipeline fed a token t map (R*R,) at threshold θ (static ladder and cosines cached)."""
    if pipeline == "pairwise" and "cosines" not in sm.cache:
        sm.cache["cosines"] = timemap.cosines(sm.maps)
    static = ladder(sm, grouping, theta, values) if pipeline == "region" else None
    return hierarchy.segment_with_tmap(sm.maps, choice, grouping, pipeline, sm.hw, static=static,
                                       cos=sm.cache.get("cosines"), **with_theta(grouping, theta, values))


def stats(sm: SceneMaps, grouping: str, theta: float, values: Mapping) -> dict[str, torch.Tensor]:
    """Per-token statistics across t (timemap.statistics), segment areas from the static ladder at θ."""
    key = ("stats", grouping, theta)
    if key not in sm.cache:
        sm.cache[key] = timemap.statistics(sm.maps, ladder(sm, grouping, theta, values))
    return sm.cache[key]


Arm = Callable[[SceneMaps, float], torch.Tensor]  # (scene, θ) -> (H, W) labels


def scores(arm: Arm, scenes: Sequence[SceneMaps], theta: float, level: str) -> np.ndarray:
    """(n_scenes,) mIoU of one arm at θ."""
    return np.array([miou(arm(sm, theta), sm, level) for sm in scenes])


def tune(arm: Arm, scenes: Sequence[SceneMaps], thetas: Sequence[float], level: str) -> tuple[float, dict]:
    """θ with the best mean mIoU on `scenes`, and {θ: mean} (an edge choice means the grid should widen)."""
    means = {th: float(scores(arm, scenes, th, level).mean()) for th in thetas}
    return max(means, key=means.get), means


def auc(arm: Arm, scenes: Sequence[SceneMaps], thetas: Sequence[float], level: str) -> np.ndarray:
    """(n_scenes,) mean mIoU over the θ grid: a score no threshold choice can flatter."""
    return np.mean([scores(arm, scenes, th, level) for th in thetas], axis=0)


def paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean, standard error and 95% interval over scenes of a - b."""
    d = np.asarray(a) - np.asarray(b)
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
    return {"diff": float(d.mean()), "se": se, "lo": float(d.mean() - 1.96 * se), "hi": float(d.mean() + 1.96 * se)}


def greedy(sm: SceneMaps, arm: Callable[[SceneMaps, torch.Tensor], torch.Tensor], best: Mapping[int, int],
           n_rungs: int, level: str, passes: int = 1) -> float:
    """Coordinate ascent over each GT region's t (start: its own best t) through a pipeline -> best scene mIoU."""
    gt = torch.from_numpy(sm.gt(level)).long()
    R = int(math.isqrt(sm.maps.shape[1]))
    tokens = timemap.token_labels(gt, R)
    current = dict(best)

    def value(assignment: Mapping[int, int]) -> float:
        lut = torch.zeros(int(gt.max()) + 1, dtype=torch.long)
        for i, k in assignment.items():
            lut[i] = k
        return miou(arm(sm, lut[tokens]), sm, level)

    score = value(current)
    for _ in range(passes):
        improved = False
        for i in current:
            for k in range(n_rungs):
                if k == current[i]:
                    continue
                trial = {**current, i: k}
                if (v := value(trial)) > score:
                    score, current, improved = v, trial, True
        if not improved:
            break
    return score


def paired_difference(preds_a: Sequence[torch.Tensor], preds_b: Sequence[torch.Tensor],
                      scenes: Sequence[world.Scene], level: str = "objects") -> tuple[float, float]:
    """Mean and standard error over scenes of mIoU(a) - mIoU(b) against one ground-truth level."""
    if level not in worldeval.LEVELS:
        raise ZsnbError(f"level={level!r}; use one of {list(worldeval.LEVELS)}.")
    a, b = ([metrics.segment_miou(p, getattr(s, level)) for p, s in zip(preds, scenes, strict=True)]
            for preds in (preds_a, preds_b))
    d = paired(np.array(a), np.array(b))
    return d["diff"], d["se"]


def beats(diff: float, se: float, gain: float = 0.03, n_se: float = 3.0) -> bool:
    """Whether a paired difference (mean, standard error) clears `gain` and `n_se` standard errors."""
    return diff >= gain and diff > n_se * se


def walkthrough(sm: SceneMaps, grouping: str, theta: float, values: Mapping, k0: int) -> dict[str, torch.Tensor]:
    """One scene: static labels at t index k0, the per-object oracle t map (H, W), and that map through the row
    mixing and region pipelines (all at θ)."""
    rungs = ladder(sm, grouping, theta, values)
    pixels, _ = object_oracle(rungs, sm.gt("objects"), k0)
    tokens = timemap.token_labels(pixels, int(math.isqrt(sm.maps.shape[1])))
    return {"static": rungs[k0], "t map": pixels, "mix": run(sm, grouping, "mix", tokens, theta, values),
            "region": run(sm, grouping, "region", tokens, theta, values)}
