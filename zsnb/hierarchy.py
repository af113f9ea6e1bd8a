"""Timestep hierarchies and per-pixel adaptive timesteps: our open take on Nakhli et al. (arXiv 2606.15590).

"Unlocking Diffusion Hierarchies: Adaptive Timestep Selection for Zero-Shot Segmentation" claims that UNet
groupings move from parts to objects as t changes, that "Contextual Similarity Maps" fusing high-resolution
attention with encoder features are robust per-pixel representations, and that choosing t per pixel beats
any static t. No code or formulas are public (docs/reference.md#unlocking-diffusion-hierarchies); every
rule below is OUR choice:

- `contextual_similarity`: the DiffSeg aggregate A (R*R, R*R) at the highest attention side R, fused with
  the feature kernel C = softmax_rows(cos(f_i, f_j) / T) of a tap bilinearly upsampled to R.
- Grouping: DiffSeg's KL merge on the map reshaped (R, R, R, R); recursive NCut (zsnb.diffcut) on sqrt(rows),
  whose cosine is the Bhattacharyya coefficient of two pixels' maps (then DiffCut's concept assignment, no
  PAMR).
- Per-pixel t: a criterion of `zsnb.timemap` picks a t map, and one of PIPELINES segments with it
  (`segment_with_tmap`); `adaptive_segment` runs the whole chain (the registry's "adaptive" method).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from zsnb import diffcut, diffseg, timemap
from zsnb.diffseg import LOG_FLOOR
from zsnb.errors import ZsnbError
from zsnb.precision import as_real

FUSIONS: tuple[str, ...] = ("reweight", "random_walk", "attention", "features")
GROUPINGS: tuple[str, ...] = ("diffseg", "ncut")
PIPELINES: tuple[str, ...] = ("mix", "smooth", "pairwise", "region")  # ways to segment with a t map (timemap)
DEFAULT_TEMPERATURE: float = 0.1  # cosine temperature of the feature kernel (our choice; see 06 notebook)


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
    return {k: float(timemap.entropy(as_real(m)).mean() / math.log(m.shape[-1])) for k, m in maps.items()}


def ladder(maps: Tensor, grouping: str, out_size: int | tuple[int, int], **values: float) -> Tensor:
    """(T, N, N) maps -> (T, H, W) = out_size static labels of each t by one grouping (values: `group`'s)."""
    return torch.stack([group(m, grouping, out_size, **values) for m in maps])


def segment_with_tmap(maps: Tensor, choice: Tensor, grouping: str, pipeline: str, out_size: int | tuple[int, int],
                      *, static: Tensor | None = None, cos: Tensor | None = None, **values: float) -> Tensor:
    """(T, N, N) maps, (N,) t map -> (H, W) = out_size labels by one of PIPELINES.

    mix: group the rows read at each token's t; smooth: the same after a 3 x 3 mode filter of the t map;
    pairwise (NCut only): tokens compared at the coarser of their two t; region: a tree cut across the static
    segmentations (`static`, (T, H, W), computed when None). cos: `timemap.cosines(maps)` if at hand.
    """
    _choice(pipeline, PIPELINES, "pipeline")
    if pipeline in ("mix", "smooth"):
        rows = timemap.mix_rows(maps, timemap.smooth(choice) if pipeline == "smooth" else choice)
        return group(rows, grouping, out_size, **values)
    if pipeline == "pairwise":
        if grouping != "ncut":
            raise ZsnbError("pipeline='pairwise' compares tokens by NCut affinity; use grouping='ncut'.")
        return timemap.ncut_pairwise(maps, choice, out_size, values.get("tau", 0.5), values.get("alpha", 10.0), cos)
    static = ladder(maps, grouping, out_size, **values) if static is None else static
    return timemap.region_select(static, timemap.upsample(choice, tuple(static.shape[1:])))


def adaptive_segment(maps_by_t: Mapping[int, Mapping[str, Tensor]], features_by_t: Mapping[int, Tensor] | None,
                     out_size: int | tuple[int, int], *, grouping: str = "diffseg", pipeline: str = "mix",
                     criterion: str = "entropy", knob: float = 0.0, fusion: str = "attention",
                     temperature: float = DEFAULT_TEMPERATURE, kl_threshold: float = 1.1, num_points: int = 16,
                     iterations: int = 3, tau: float = 0.5, alpha: float = 10.0) -> tuple[Tensor, Tensor]:
    """{t: {layer: maps}}, {t: (h, w, C)} -> (labels (H, W) = out_size long, t map (R, R) of indices into t).

    Contextual similarity per t (fusion, temperature), the static segmentation of each t, a t map by
    `timemap.choose` (criterion, knob), then `segment_with_tmap` (pipeline; DiffSeg: kl_threshold, num_points,
    iterations; NCut: tau, alpha).
    """
    _choice(grouping, GROUPINGS, "grouping")
    sims = {t: contextual_similarity(maps_by_t[t], None if features_by_t is None else features_by_t[t], fusion,
                                     temperature) for t in sorted(maps_by_t)}
    maps = timemap.stack(sims)
    values = ({"kl_threshold": kl_threshold, "num_points": num_points, "iterations": iterations}
              if grouping == "diffseg" else {"tau": tau, "alpha": alpha})
    static = ladder(maps, grouping, out_size, **values)
    choice = timemap.choose(timemap.statistics(maps, static), criterion, knob)
    labels = segment_with_tmap(maps, choice, grouping, pipeline, out_size, static=static, **values)
    return labels, choice.view(diffseg._side(len(choice), "maps"), -1)
