"""Timestep hierarchies and per-pixel adaptive timesteps: our open take on Nakhli et al. (arXiv 2606.15590).

"Unlocking Diffusion Hierarchies: Adaptive Timestep Selection for Zero-Shot Segmentation" claims that UNet
groupings move from parts to objects as t changes, that "Contextual Similarity Maps" fusing high-resolution
attention with encoder features are robust per-pixel representations, and that choosing t per pixel beats
any static t. No code or formulas are public (anchors.md §1(c)); every rule below is OUR choice:

- `contextual_similarity`: the DiffSeg aggregate A (R*R, R*R) at the highest attention side R, fused with
  the feature kernel C = softmax_rows(cos(f_i, f_j) / T) of a tap bilinearly upsampled to R.
- `select_timesteps`: per pixel, the t whose similarity row minimises a criterion (entropy, or symmetric-KL
  disagreement with its 4-neighbours); a granularity target picks the smallest (part) or largest (object)
  t whose score lies within `slack` of the pixel's best.
- Grouping: DiffSeg's KL merge on the fused map reshaped (R, R, R, R); recursive NCut (zsnb.diffcut) on
  sqrt(rows) of the fused map, whose cosine is the Bhattacharyya coefficient of two pixels' maps (then
  DiffCut's concept assignment, no PAMR). `compare` scores static t against adaptive t* on world scenes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from zsnb import diffcut, diffseg, metrics, world, worldeval
from zsnb.diffseg import LOG_FLOOR
from zsnb.precision import as_real

FUSIONS: tuple[str, ...] = ("reweight", "random_walk", "attention", "features")
CRITERIA: tuple[str, ...] = ("entropy", "agreement")
TARGETS: tuple[str | None, ...] = (None, "part", "object")
METHODS: tuple[str, ...] = ("diffseg", "ncut")
DEFAULT_TEMPERATURE: float = 0.1  # cosine temperature of the feature kernel (our choice; see 06 notebook)
DEFAULT_SLACK: float = 0.1  # target rule: fraction of a pixel's score range (over t) counted as "near best"
# `run`'s defaults (ours, not the paper's). None: the backbone's DiffCut tap, DiffSeg kl_threshold, DiffCut tau.
ADAPTIVE_DEFAULTS: dict[str, Any] = {"timesteps": (25, 50, 100, 200, 300, 500), "noise": "none", "seed": 42,
                                     "grouping": "diffseg", "fusion": "random_walk", "criterion": "entropy",
                                     "target": None, "temperature": DEFAULT_TEMPERATURE, "tap": None,
                                     "kl_threshold": None, "tau": None}


def _choice(value: Any, allowed: Sequence[Any], name: str) -> None:
    """ValueError naming the argument unless value is one of allowed."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r}; use one of {list(allowed)}.")


def feature_kernel(features: Tensor, res: int, temperature: float = DEFAULT_TEMPERATURE) -> Tensor:
    """Features (h, w, C) -> (res*res, res*res) row-stochastic softmax(cos / temperature), bilinear to res."""
    if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature={temperature!r} must be a finite positive number (e.g. 0.1).")
    if features.ndim != 3:
        raise ValueError(f"features has shape {tuple(features.shape)}; pass (h, w, C).")
    x = as_real(features).permute(2, 0, 1)[None]  # (1, C, h, w)
    x = F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False)[0]  # (C, res, res)
    unit = F.normalize(x.flatten(1).T, dim=1)  # (res*res, C)
    return (unit @ unit.T / temperature).softmax(dim=1)


def fuse(attention: Tensor, kernel: Tensor | None, fusion: str = "reweight") -> Tensor:
    """Attention A (N, N) and feature kernel C (N, N), both row-stochastic -> fused (N, N) row-stochastic.

    reweight: A ⊙ C renormalised per row (= A ⊙ exp(cos/T): the softmax's row constant cancels);
    random_walk: A @ C (one attention step, then one feature step); attention: A; features: C.
    """
    _choice(fusion, FUSIONS, "fusion")
    if fusion == "attention":
        return attention
    if kernel is None or kernel.shape != attention.shape:
        got = None if kernel is None else tuple(kernel.shape)
        raise ValueError(f"kernel must be ({attention.shape[0]}, {attention.shape[1]}) for fusion={fusion!r}; "
                         f"got {got}.")
    if fusion == "features":
        return kernel
    if fusion == "random_walk":
        return attention @ kernel
    fused = attention * kernel
    return fused / fused.sum(1, keepdim=True).clamp_min(LOG_FLOOR)


def contextual_similarity(capture: Any, t: int, index: int = 0, fusion: str = "reweight",
                          features_tap: str = "down_last_attn1", temperature: float = DEFAULT_TEMPERATURE,
                          out_res: int | None = None) -> Tensor:
    """Capture with self-attention (and the tap) at t -> (R*R, R*R) row-stochastic contextual similarity.

    R = out_res, default the highest self-attention side; attention is DiffSeg's aggregate (weights ∝ side).
    """
    _choice(fusion, FUSIONS, "fusion")
    maps = {k: as_real(v).cpu() for k, v in capture.self_attention(t, index).items()}
    attention = diffseg.aggregate(maps, out_res)  # (R, R, R, R)
    R = attention.shape[0]
    attention = attention.reshape(R * R, R * R)
    if fusion == "attention":
        return attention
    kernel = feature_kernel(capture.features(t, features_tap, index).cpu(), R, temperature)
    return fuse(attention, kernel, fusion)


def entropy(maps: Tensor) -> Tensor:
    """(..., D) row distributions -> (...) Shannon entropy in nats."""
    return -(maps * maps.clamp_min(LOG_FLOOR).log()).sum(-1)


def disagreement(maps: Tensor) -> Tensor:
    """(R*R, D) per-pixel maps -> (R, R) mean symmetric KL to the pixel's 4-neighbours inside the grid."""
    R = diffseg._side(maps.shape[0], "maps")
    x = maps.reshape(R, R, -1)
    logs = x.clamp_min(LOG_FLOOR).log()
    total = torch.zeros(R, R)
    count = torch.zeros(R, R)
    for dim in (0, 1):  # each neighbour pair once, credited to both pixels
        a, b = x.narrow(dim, 0, R - 1), x.narrow(dim, 1, R - 1)
        la, lb = logs.narrow(dim, 0, R - 1), logs.narrow(dim, 1, R - 1)
        kl = 0.5 * ((a - b) * (la - lb)).sum(-1)  # symmetric KL of neighbouring rows
        for offset in (0, 1):
            total.narrow(dim, offset, R - 1).add_(kl)
            count.narrow(dim, offset, R - 1).add_(1)
    return total / count.clamp_min(1)


def _stack(maps_by_t: Mapping[int, Tensor] | Sequence[Tensor]) -> Tensor:
    """{t: (N, N)} in increasing t, or a sequence of (N, N) -> (T, N, N); ValueError if unusable."""
    if isinstance(maps_by_t, Mapping):
        ts = list(maps_by_t)
        if ts != sorted(ts) or len(set(ts)) != len(ts):
            raise ValueError(f"maps_by_t keys {ts} must be distinct timesteps in increasing order.")
        maps_by_t = list(maps_by_t.values())
    if len(maps_by_t) == 0 or len({tuple(m.shape) for m in maps_by_t}) != 1 or maps_by_t[0].ndim != 2:
        raise ValueError("maps_by_t must hold at least one map, all of the same shape (R*R, R*R).")
    return torch.stack([as_real(m) for m in maps_by_t])


def criterion_scores(maps_by_t: Mapping[int, Tensor] | Sequence[Tensor], criterion: str = "entropy") -> Tensor:
    """{t: (R*R, R*R)} -> (T, R, R) per-pixel scores, lower is better (entropy or neighbour disagreement)."""
    return _scores(_stack(maps_by_t), criterion)


def _scores(stack: Tensor, criterion: str) -> Tensor:
    """(T, R*R, R*R) stacked maps -> (T, R, R) criterion scores."""
    _choice(criterion, CRITERIA, "criterion")
    R = diffseg._side(stack.shape[1], "maps_by_t")
    if criterion == "entropy":
        return entropy(stack).reshape(-1, R, R)
    return torch.stack([disagreement(m) for m in stack])


def select_timesteps(maps_by_t: Mapping[int, Tensor] | Sequence[Tensor], criterion: str = "entropy",
                     target: str | None = None, slack: float = DEFAULT_SLACK) -> tuple[Tensor, Tensor]:
    """{t: (R*R, R*R)} (increasing t) -> (t* index (R, R) long, fused (R*R, R*R): row i from map t*(i)).

    target None: argmin of the criterion. "part" / "object": the smallest / largest t whose score is within
    slack * (max - min over t) of the pixel's minimum (smaller t = less noise = finer groups, our rule).
    """
    _choice(target, TARGETS, "target")
    if not (isinstance(slack, int | float) and 0 <= slack <= 1):
        raise ValueError(f"slack={slack!r} must be a number in [0, 1].")
    stack = _stack(maps_by_t)  # (T, R*R, R*R)
    scores = _scores(stack, criterion)  # (T, R, R)
    if target is None:
        choice = scores.argmin(0)
    else:
        lo, hi = scores.amin(0), scores.amax(0)
        near = scores <= lo + slack * (hi - lo)  # (T, R, R), at least the minimum is near
        order = torch.arange(len(stack)).view(-1, 1, 1).expand_as(near)
        choice = torch.where(near, order, len(stack) if target == "part" else -1)
        choice = choice.amin(0) if target == "part" else choice.amax(0)
    fused = stack[choice.flatten(), torch.arange(stack.shape[1])]  # (R*R, R*R)
    return choice, fused


def group_diffseg(fused: Tensor, out_size: int, kl_threshold: float = 1.1, num_points: int = 16,
                  iterations: int = 3) -> Tensor:
    """(R*R, R*R) row-stochastic map -> (out_size, out_size) long labels by DiffSeg's KL merge."""
    R = diffseg._side(fused.shape[0], "fused")
    return diffseg.segment(fused.reshape(R, R, R, R), kl_threshold=kl_threshold,
                           num_points=min(num_points, R), iterations=iterations, out_size=out_size)


def group_ncut(fused: Tensor, out_size: int, tau: float = 0.5, alpha: float = 10.0) -> Tensor:
    """(R*R, R*R) -> (out_size, out_size) long labels: recursive NCut on sqrt(rows), concepts upsampled."""
    R = diffseg._side(fused.shape[0], "fused")
    feats = fused.clamp_min(0).sqrt().reshape(R, R, R * R)  # unit rows: cosine = Bhattacharyya coefficient
    return diffcut.segment(feats, tau=tau, alpha=alpha, out_size=out_size, refine=False)


def group(fused: Tensor, method: str, out_size: int, params: Mapping[str, Any]) -> Tensor:
    """Dispatch to group_diffseg (params: kl_threshold, num_points, iterations) or group_ncut (tau, alpha)."""
    _choice(method, METHODS, "method")
    if method == "diffseg":
        return group_diffseg(fused, out_size, params["kl_threshold"], params["num_points"], params["iterations"])
    return group_ncut(fused, out_size, params["tau"], params["alpha"])


def layer_entropy(capture: Any, t: int, index: int = 0) -> dict[str, float]:
    """{self-attention layer: mean row entropy / log(keys)} in [0, 1] (1 = uniform attention)."""
    return {k: float(entropy(as_real(m)).mean() / math.log(m.shape[-1]))
            for k, m in capture.self_attention(t, index).items()}


def timestep_sweep(backbone: Any, seeds: Sequence[int], timesteps: Sequence[int], noise: str = "none",
                   seed: int = 42, batch: int = 32) -> dict[int, dict[str, Any]]:
    """Per t: mean layer entropy by side, DiffSeg and DiffCut (backbone defaults, t replaced) scores."""
    ds, dc = backbone.defaults["diffseg"], backbone.defaults["diffcut"]
    preds: dict[int, dict[str, list]] = {t: {"diffseg": [], "diffcut": [], "entropy": []} for t in timesteps}
    scenes_all: list[world.Scene] = []
    for scenes, cap in worldeval.captures(backbone, seeds, tuple(timesteps), batch, progress=False, noise=noise,
                                          seed=seed, attention="self", features=(dc["tap"],)):
        scenes_all += scenes
        side = scenes[0].image.shape[0]
        for t in timesteps:
            for i in range(len(scenes)):
                fused = contextual_similarity(cap, t, i, fusion="attention")
                preds[t]["diffseg"].append(group(fused, "diffseg", side, ds))
                preds[t]["diffcut"].append(diffcut.segment_capture(cap, i, {**dc, "timestep": t}, side))
                preds[t]["entropy"].append(layer_entropy(cap, t, i))
    sides = {n: r for r, names in backbone.attention_layers("self").items() for n in names}
    out = {}
    for t, p in preds.items():
        by_side = {r: float(np.mean([e[n] for e in p["entropy"] for n in e if sides[n] == r]))
                   for r in sorted(set(sides.values()), reverse=True)}
        out[t] = {"entropy": by_side, "diffseg": worldeval.score(p["diffseg"], scenes_all),
                  "diffcut": worldeval.score(p["diffcut"], scenes_all)}
    return out


def adaptive_segment(capture: Any, index: int, timesteps: Sequence[int], method: str, params: Mapping[str, Any],
                     fusion: str = "reweight", criterion: str = "entropy", target: str | None = None,
                     features_tap: str = "down_last_attn1", temperature: float = DEFAULT_TEMPERATURE,
                     out_size: int | None = None) -> tuple[Tensor, Tensor]:
    """Image `index` of a multi-t capture -> (labels (S, S) long, t* index (R, R)); S = out_size or image side."""
    maps = {t: contextual_similarity(capture, t, index, fusion, features_tap, temperature)
            for t in sorted(timesteps)}
    choice, fused = select_timesteps(maps, criterion, target)
    return group(fused, method, out_size or capture.images.shape[-1], params), choice


def compare(backbone: Any, seeds: Sequence[int], timesteps: Sequence[int], methods: Sequence[str] = METHODS,
            fusions: Sequence[str] = ("attention", "reweight"), criteria: Sequence[str] = CRITERIA,
            targets: Sequence[str | None] = (None,),
            params: Mapping[str, Mapping[str, Any]] | None = None, features_tap: str | None = None,
            temperature: float = DEFAULT_TEMPERATURE, noise: str = "none", seed: int = 42,
            batch: int = 32) -> tuple[dict[str, dict[str, float]], dict[str, list[Tensor]], list[world.Scene]]:
    """(scores, label maps, scenes) of static-t and adaptive-t* groupings, one multi-t capture per batch.

    Keys: "static t=50 | fusion | method", "adaptive entropy | fusion | method" (target None) and
    "adaptive entropy/part | ...". Scores as worldeval.score; params default to the backbone's defaults.
    """
    params = params or {"diffseg": backbone.defaults["diffseg"], "ncut": backbone.defaults["diffcut"]}
    tap = features_tap or backbone.defaults["diffcut"]["tap"]
    ts = sorted(timesteps)
    preds: dict[str, list[Tensor]] = {}
    scenes_all: list[world.Scene] = []
    for scenes, cap in worldeval.captures(backbone, seeds, ts, batch, progress=False, noise=noise, seed=seed,
                                          attention="self", features=(tap,)):
        scenes_all += scenes
        side = scenes[0].image.shape[0]
        for i in range(len(scenes)):
            for fusion in fusions:
                maps = {t: contextual_similarity(cap, t, i, fusion, tap, temperature) for t in ts}
                for method in methods:
                    for t in ts:
                        key = f"static t={t} | {fusion} | {method}"
                        preds.setdefault(key, []).append(group(maps[t], method, side, params[method]))
                    for criterion in criteria:
                        for target in targets:
                            fused = select_timesteps(maps, criterion, target)[1]
                            name = criterion if target is None else f"{criterion}/{target}"
                            key = f"adaptive {name} | {fusion} | {method}"
                            preds.setdefault(key, []).append(group(fused, method, side, params[method]))
    return {k: worldeval.score(p, scenes_all) for k, p in preds.items()}, preds, scenes_all


def paired_difference(preds_a: Sequence[Tensor], preds_b: Sequence[Tensor], scenes: Sequence[world.Scene],
                      level: str = "objects") -> tuple[float, float]:
    """Mean and standard error over scenes of mIoU(a) - mIoU(b) against one ground-truth level."""
    _choice(level, worldeval.LEVELS, "level")
    d = np.array([metrics.segment_miou(a, getattr(s, level)) - metrics.segment_miou(b, getattr(s, level))
                  for a, b, s in zip(preds_a, preds_b, scenes, strict=True)])
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")


def run(backbone: Any, image: Any, **overrides: Any) -> Tensor:
    """Image (path, PIL, array or (3, H, W)) -> (S, S) long labels by adaptive t*; S = the cropped side.

    Parameters: ADAPTIVE_DEFAULTS, then backbone.defaults["adaptive"] if present, then keyword overrides;
    the grouping ("diffseg" or "ncut") takes the backbone's DiffSeg (num_points, iterations) or DiffCut
    (alpha) defaults and kl_threshold / tau from the parameters when set. One capture holds every timestep.
    """
    from zsnb.capture import capture  # here, as in diffseg.run: `zsnb.capture` is the function
    from zsnb.images import load_image

    params = {**ADAPTIVE_DEFAULTS, **backbone.defaults.get("adaptive", {})}
    unknown = set(overrides) - set(params)
    if unknown:
        raise ValueError(f"unknown overrides {sorted(unknown)}; valid keys are {sorted(params)}.")
    params.update(overrides)
    method = params["grouping"]
    _choice(method, METHODS, "grouping")
    grouping = dict(backbone.defaults["diffcut" if method == "ncut" else "diffseg"])
    grouping.update({k: params[k] for k in ("kl_threshold", "tau") if params[k] is not None})
    side = min(image.shape[-2:]) if isinstance(image, Tensor) else backbone.resolution
    ts = tuple(sorted(params["timesteps"]))
    tap = params["tap"] or backbone.defaults["diffcut"]["tap"]
    cap = capture(backbone, load_image(image, backbone.resolution), ts, noise=params["noise"], seed=params["seed"],
                  prompt="", attention="self", features=(tap,))
    labels, _ = adaptive_segment(cap, 0, ts, method, grouping, params["fusion"], params["criterion"],
                                 params["target"], tap, params["temperature"], int(side))
    return labels
