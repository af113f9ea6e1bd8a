"""Timestep hierarchies and per-pixel adaptive timesteps: our open take on Nakhli et al. (arXiv 2606.15590).

"Unlocking Diffusion Hierarchies: Adaptive Timestep Selection for Zero-Shot Segmentation" claims that UNet
groupings move from parts to objects as t changes, that "Contextual Similarity Maps" fusing high-resolution
attention with encoder features are robust per-pixel representations, and that choosing t per pixel beats
any static t. No code or formulas are public (docs/reference.md#unlocking-diffusion-hierarchies); every
rule below is OUR choice:

- `contextual_similarity`: the DiffSeg aggregate A (R*R, R*R) at the highest attention side R, fused with
  the feature kernel C = softmax_rows(cos(f_i, f_j) / T) of a tap bilinearly upsampled to R.
- `select_timesteps`: per pixel, the t whose similarity row minimises a criterion (entropy, or symmetric-KL
  disagreement with its 4-neighbours); a granularity target picks the smallest (part) or largest (object)
  t whose score lies within `slack` of the pixel's best.
- Grouping: DiffSeg's KL merge on the fused map reshaped (R, R, R, R); recursive NCut (zsnb.diffcut) on
  sqrt(rows) of the fused map, whose cosine is the Bhattacharyya coefficient of two pixels' maps (then
  DiffCut's concept assignment, no PAMR). `adaptive_segment` runs them all (the registry's "adaptive" method).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from zsnb import diffcut, diffseg
from zsnb.diffseg import LOG_FLOOR
from zsnb.errors import ZsnbError
from zsnb.precision import as_real

FUSIONS: tuple[str, ...] = ("reweight", "random_walk", "attention", "features")
CRITERIA: tuple[str, ...] = ("entropy", "agreement")
TARGETS: tuple[str | None, ...] = (None, "part", "object")
GROUPINGS: tuple[str, ...] = ("diffseg", "ncut")
DEFAULT_TEMPERATURE: float = 0.1  # cosine temperature of the feature kernel (our choice; see 06 notebook)
DEFAULT_SLACK: float = 0.1  # target rule: fraction of a pixel's score range (over t) counted as "near best"


def _choice(value: Any, allowed: Sequence[Any], name: str) -> None:
    """ZsnbError naming the argument unless value is one of allowed."""
    if value not in allowed:
        raise ZsnbError(f"{name}={value!r}; use one of {list(allowed)}.")


def feature_kernel(features: Tensor, res: int, temperature: float = DEFAULT_TEMPERATURE) -> Tensor:
    """Features (h, w, C) -> (res*res, res*res) row-stochastic softmax(cos / temperature), bilinear to res."""
    if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature > 0):
        raise ZsnbError(f"temperature={temperature!r} must be a finite positive number (e.g. 0.1).")
    if features.ndim != 3:
        raise ZsnbError(f"features has shape {tuple(features.shape)}; pass (h, w, C).")
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
        raise ZsnbError(f"kernel must be ({attention.shape[0]}, {attention.shape[1]}) for fusion={fusion!r}; "
                         f"got {got}.")
    if fusion == "features":
        return kernel
    if fusion == "random_walk":
        return attention @ kernel
    fused = attention * kernel
    return fused / fused.sum(1, keepdim=True).clamp_min(LOG_FLOOR)


def contextual_similarity(maps: Mapping[str, Tensor], features: Tensor | None = None, fusion: str = "reweight",
                          temperature: float = DEFAULT_TEMPERATURE, out_res: int | None = None) -> Tensor:
    """{layer: (q, q)} self-attention at one t, features (h, w, C) -> (R*R, R*R) row-stochastic similarity.

    R = out_res, default the highest self-attention side; attention is DiffSeg's aggregate (weights ∝ side);
    features may be None for fusion "attention".
    """
    _choice(fusion, FUSIONS, "fusion")
    attention = diffseg.aggregate({k: as_real(v).cpu() for k, v in maps.items()}, out_res)  # (R, R, R, R)
    R = attention.shape[0]
    attention = attention.reshape(R * R, R * R)
    if fusion == "attention":
        return attention
    if features is None:
        raise ZsnbError(f"fusion={fusion!r} needs features (h, w, C); pass them, or use fusion='attention'.")
    return fuse(attention, feature_kernel(features.cpu(), R, temperature), fusion)


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
        kl = diffseg.symmetric_kl(a, b, logs.narrow(dim, 0, R - 1), logs.narrow(dim, 1, R - 1), paired=True)
        for offset in (0, 1):
            total.narrow(dim, offset, R - 1).add_(kl)
            count.narrow(dim, offset, R - 1).add_(1)
    return total / count.clamp_min(1)


def _stack(maps_by_t: Mapping[int, Tensor] | Sequence[Tensor]) -> Tensor:
    """{t: (N, N)} in increasing t, or a sequence of (N, N) -> (T, N, N); ZsnbError if unusable."""
    if isinstance(maps_by_t, Mapping):
        ts = list(maps_by_t)
        if ts != sorted(ts) or len(set(ts)) != len(ts):
            raise ZsnbError(f"maps_by_t keys {ts} must be distinct timesteps in increasing order.")
        maps_by_t = list(maps_by_t.values())
    if len(maps_by_t) == 0 or len({tuple(m.shape) for m in maps_by_t}) != 1 or maps_by_t[0].ndim != 2:
        raise ZsnbError("maps_by_t must hold at least one map, all of the same shape (R*R, R*R).")
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
        raise ZsnbError(f"slack={slack!r} must be a number in [0, 1].")
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


def group_diffseg(fused: Tensor, out_size: int | tuple[int, int], kl_threshold: float = 1.1, num_points: int = 16,
                  iterations: int = 3) -> Tensor:
    """(R*R, R*R) row-stochastic map -> (H, W) = out_size long labels by DiffSeg's KL merge."""
    R = diffseg._side(fused.shape[0], "fused")
    return diffseg.segment(fused.reshape(R, R, R, R), kl_threshold=kl_threshold,
                           num_points=min(num_points, R), iterations=iterations, out_size=out_size)


def group_ncut(fused: Tensor, out_size: int | tuple[int, int], tau: float = 0.5, alpha: float = 10.0) -> Tensor:
    """(R*R, R*R) -> (H, W) = out_size long labels: recursive NCut on sqrt(rows), concepts upsampled."""
    R = diffseg._side(fused.shape[0], "fused")
    feats = fused.clamp_min(0).sqrt().reshape(R, R, R * R)  # unit rows: cosine = Bhattacharyya coefficient
    return diffcut.segment(feats, tau=tau, alpha=alpha, out_size=out_size, refine=False)


def group(fused: Tensor, grouping: str, out_size: int | tuple[int, int], *, kl_threshold: float = 1.1,
          num_points: int = 16, iterations: int = 3, tau: float = 0.5, alpha: float = 10.0) -> Tensor:
    """Dispatch to group_diffseg (kl_threshold, num_points, iterations) or group_ncut (tau, alpha)."""
    _choice(grouping, GROUPINGS, "grouping")
    if grouping == "diffseg":
        return group_diffseg(fused, out_size, kl_threshold, num_points, iterations)
    return group_ncut(fused, out_size, tau, alpha)


def layer_entropy(maps: Mapping[str, Tensor]) -> dict[str, float]:
    """{layer: (Q, K) maps} -> {layer: mean row entropy / log(K)} in [0, 1] (1 = uniform attention)."""
    return {k: float(entropy(as_real(m)).mean() / math.log(m.shape[-1])) for k, m in maps.items()}


def adaptive_segment(maps_by_t: Mapping[int, Mapping[str, Tensor]], features_by_t: Mapping[int, Tensor] | None,
                     out_size: int | tuple[int, int], *, grouping: str = "diffseg", fusion: str = "reweight",
                     criterion: str = "entropy", target: str | None = None, slack: float = DEFAULT_SLACK,
                     temperature: float = DEFAULT_TEMPERATURE, kl_threshold: float = 1.1, num_points: int = 16,
                     iterations: int = 3, tau: float = 0.5, alpha: float = 10.0) -> tuple[Tensor, Tensor]:
    """{t: {layer: maps}}, {t: (h, w, C)} -> (labels (H, W) = out_size long, t* index (R, R)).

    Contextual similarity per t (fusion, temperature), t* per pixel (criterion, target, slack), then the
    grouping (DiffSeg: kl_threshold, num_points, iterations; NCut: tau, alpha).
    """
    sims = {t: contextual_similarity(maps_by_t[t], None if features_by_t is None else features_by_t[t], fusion,
                                     temperature) for t in sorted(maps_by_t)}
    choice, fused = select_timesteps(sims, criterion, target, slack)
    return group(fused, grouping, out_size, kl_threshold=kl_threshold, num_points=num_points, iterations=iterations,
                 tau=tau, alpha=alpha), choice
