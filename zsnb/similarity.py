"""DiffSeg's two observations about self-attention, measured against ground-truth segments.

Tian et al. (DiffSeg, CVPR 2024) build on two properties of head-averaged self-attention maps (rows of a
(Q, Q) matrix, Q = r * r query pixels, each row a distribution over the r * r key pixels):

- intra-attention similarity: a pixel puts most of its attention mass inside its own object;
- inter-attention similarity: pixels of one object have similar maps (small symmetric KL divergence),
  pixels of different objects dissimilar ones.

Labels are pooled to each map's side r by mode (majority per block; nearest when the side does not divide
the label size), so masses and pairs live on the map's own grid. Intra: `own_mass` gives each query's
mass inside its segment and the chance level, the segment's area fraction (what a uniform map gives).
Inter: `sample_pairs` draws same- and different-segment pixel pairs with a seeded generator, `pair_kl`
their divergence, `roc_auc` how well it separates the two. `Survey` holds both measurements for a set of
scenes; the repository's `experiments.survey` takes them on `zsnb.world`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from zsnb import diffseg, timemap
from zsnb.errors import ZsnbError
from zsnb.precision import as_real

AGGREGATE = "aggregate"  # view name of DiffSeg's multi-resolution aggregate


def pool_labels(labels: Any, side: int) -> Tensor:
    """(H, H) int labels -> (side, side) long: majority label per block (ties: smallest id), else nearest."""
    lab = torch.as_tensor(np.asarray(labels)).long()
    if lab.ndim != 2 or lab.shape[0] != lab.shape[1] or side < 1:
        raise ZsnbError(f"labels {tuple(lab.shape)} must be square (H, H) and side={side} positive.")
    size = lab.shape[0]
    if size % side == 0:
        f = size // side
        ids, inverse = lab.unique(return_inverse=True)
        counts = F.one_hot(inverse, len(ids)).view(side, f, side, f, -1).sum((1, 3))  # (side, side, C)
        return ids[counts.argmax(-1)]  # argmax returns the first maximum: the smallest id wins ties
    src = ((torch.arange(side) + 0.5) * size / side).long()  # nearest-exact: block centres
    return lab[src[:, None], src[None, :]]


def by_resolution(maps: Mapping[str, Tensor]) -> dict[int, Tensor]:
    """{layer: (Q, Q)} -> {r: (Q, Q) mean of the layers with Q = r * r}, largest r first."""
    groups: dict[int, list[Tensor]] = {}
    for m in maps.values():
        groups.setdefault(math.isqrt(m.shape[0]), []).append(as_real(m))
    return {r: torch.stack(groups[r]).mean(0) for r in sorted(groups, reverse=True)}


def map_statistics(maps: Tensor) -> dict[str, float]:
    """(Q, Q) maps on an r x r grid -> means over queries: relative entropy, distance, cosine to mean, sink share.

    relative entropy: 1 = uniform; distance: of a query's mass from the query, in tokens; cosine to the mean
    map: 1 = every query has the same map; sink share: the largest mass one key gets in the mean map. Low
    entropy with a high cosine and sink share is a shared sink, not a map that follows the query's object.
    """
    maps = as_real(maps)
    side = diffseg._side(maps.shape[0], "maps")
    grid = torch.cartesian_prod(torch.arange(side), torch.arange(side)).to(maps.dtype)  # (Q, 2) (row, col)
    mean = maps.mean(0, keepdim=True)
    return {"relative entropy": float(timemap.entropy(maps).mean() / math.log(maps.shape[-1])),
            "distance": float((maps * torch.cdist(grid, grid)).sum(-1).mean()),
            "cosine to mean": float(F.cosine_similarity(maps, mean).mean()),
            "sink share": float(mean.max())}


def views(maps: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """{layer: (Q, Q)} -> the layers, per-resolution means ("16x16", ...) and DiffSeg's aggregate, on CPU."""
    maps = {k: as_real(v.detach()).cpu() for k, v in maps.items()}
    agg = diffseg.aggregate(maps)  # (R, R, R, R)
    side = agg.shape[0]
    return {**maps, **{f"{r}x{r}": m for r, m in by_resolution(maps).items()},
            AGGREGATE: agg.reshape(side * side, side * side)}


def short_name(layer: str) -> str:
    """diffusers attention name -> short label, e.g. "down_blocks.1.attentions.0...attn1" -> "down1.0"."""
    parts = layer.split(".")
    if not parts[0].endswith("_blocks") and parts[0] != "mid_block":
        return layer
    block = parts[0].split("_")[0] + (parts[1] if parts[0] != "mid_block" else "")
    rest = parts[2:] if parts[0] != "mid_block" else parts[1:]
    return f"{block}.{rest[1]}" if len(rest) > 1 and rest[0] == "attentions" else layer


def own_mass(attn: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(Q, Q) row-stochastic maps, (r, r) labels, Q = r*r -> (Q,) mass in own segment, (Q,) chance (area)."""
    flat = labels.flatten()
    if attn.ndim != 2 or attn.shape != (flat.numel(), flat.numel()):
        raise ZsnbError(f"attn {tuple(attn.shape)} must be (Q, Q) with Q = labels.numel() = {flat.numel()}.")
    ids, inverse = flat.unique(return_inverse=True)
    onehot = F.one_hot(inverse, len(ids)).to(attn.dtype)  # (Q, C)
    mass = (attn @ onehot).gather(1, inverse[:, None])[:, 0] / attn.sum(1)
    return mass, onehot.mean(0)[inverse]


RELATIONS: tuple[str, ...] = ("own part", "other parts of own object", "other objects", "background")


def relation_density(attn: Tensor, parts: Tensor, objects: Tensor) -> dict[str, float]:
    """(Q, Q) maps, (r, r) part and object labels (0 = background) -> mean density per RELATIONS.

    For each object pixel's map: the mass on the pixels of a relation divided by their share of the map
    (1 = a uniform map; > 1 = attended more than chance), averaged over the object pixels that have such pixels.
    Whether attention binds parts into objects shows as "other parts of own object" standing above "other objects".
    """
    mass_p, share_p = own_mass(attn, parts)
    mass_o, share_o = own_mass(attn, objects)
    bg = objects.flatten() == 0
    mass_bg = attn[:, bg].sum(1) / attn.sum(1)
    share_bg = bg.float().mean().expand_as(share_o)
    terms = {RELATIONS[0]: (mass_p, share_p), RELATIONS[1]: (mass_o - mass_p, share_o - share_p),
             RELATIONS[2]: (1 - mass_o - mass_bg, 1 - share_o - share_bg), RELATIONS[3]: (mass_bg, share_bg)}
    out = {}
    for name, (mass, share) in terms.items():
        keep = ~bg & (share > 0.5 / len(bg))  # shares are multiples of 1/Q: below half of one is rounding
        out[name] = float((mass[keep] / share[keep]).mean()) if keep.any() else float("nan")
    return out


def binding_ratio(densities: Mapping[str, float]) -> float:
    """`relation_density` output -> sibling-part density over other-object density (> 1: parts bound into objects)."""
    return densities["other parts of own object"] / densities["other objects"]


def sample_pairs(labels: Tensor, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(r, r) labels -> (n_same, 2), (n_diff, 2) flat pixel pairs, n_* <= n.

    Each pair draws a query uniformly, then a partner uniformly among the other pixels of its segment
    (same) or among the pixels of all other segments (diff); queries with no such partner are dropped.
    """
    flat = labels.flatten()
    q = flat.numel()
    order = torch.argsort(flat, stable=True)  # pixels grouped by segment
    _, inverse, counts = flat.unique(return_inverse=True, return_counts=True)
    start = counts.cumsum(0) - counts  # (C,) first position of each segment in `order`
    pos = torch.empty(q, dtype=torch.long)
    pos[order] = torch.arange(q)
    i = torch.randint(q, (n,), generator=generator)
    c, s = counts[inverse[i]], start[inverse[i]]
    u = torch.rand(2, n, generator=generator, dtype=torch.float64)
    k = (u[0] * (c - 1)).long()  # one of the c - 1 other members ...
    k = k + (s + k >= pos[i]).long()  # ... skipping the query itself
    same = torch.stack([i, order[(s + k).clamp_max(q - 1)]], 1)[c > 1]
    k = (u[1] * (q - c)).long()  # one of the q - c pixels outside the segment ...
    k = k + c * (k >= s).long()  # ... jumping over the segment's block
    diff = torch.stack([i, order[k.clamp_max(q - 1)]], 1)[c < q]
    return same, diff


def pair_kl(attn: Tensor, pairs: Tensor) -> Tensor:
    """(Q, Q) maps, (n, 2) pixel pairs -> (n,) KL(p||q)/2 + KL(q||p)/2 (`diffseg.symmetric_kl`, paired)."""
    return diffseg.symmetric_kl(as_real(attn[pairs[:, 0]]), as_real(attn[pairs[:, 1]]), paired=True)


def roc_auc(negatives: Any, positives: Any) -> float:
    """(n,), (m,) scores -> ROC AUC = P(positive > negative) + P(tie)/2, via Mann-Whitney ranks."""
    neg, pos = np.asarray(negatives, float).ravel(), np.asarray(positives, float).ravel()
    if not len(neg) or not len(pos):
        raise ZsnbError("roc_auc needs at least one negative and one positive score.")
    _, inverse, counts = np.unique(np.concatenate([neg, pos]), return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # average 1-based rank within ties
    m = len(pos)
    return float((ranks[len(neg):].sum() - m * (m + 1) / 2) / (m * len(neg)))


@dataclass
class Survey:
    """Both measurements for one backbone; views are layers, "RxR" resolution means and "aggregate"."""

    intra: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # level -> view -> (scenes, 2)
    inter: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)  # level -> view -> kind
    sides: dict[str, int] = field(default_factory=dict)  # view -> map side r

    def intra_summary(self, level: str) -> dict[str, tuple[float, float, float, float]]:
        """{view: (mean own mass, mean chance, mean excess = mass - chance, standard error of the excess)}."""
        out = {}
        for v, a in self.intra[level].items():
            excess = a[:, 0] - a[:, 1]  # per scene, so the scene-to-scene spread of chance cancels
            se = excess.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else float("nan")
            out[v] = (float(a[:, 0].mean()), float(a[:, 1].mean()), float(excess.mean()), float(se))
        return out

    def auc(self, level: str, view: str, negatives: str = "same") -> float:
        """ROC AUC of symmetric KL separating "different" (positives) from `negatives` pairs."""
        kl = self.inter[level][view]
        return roc_auc(kl[negatives], kl["different"])


def diffseg_views(names: Iterable[str]) -> list[str]:
    """The view names that are resolution means ("16x16", ...) or the aggregate, not single layers."""
    return [v for v in names if v == AGGREGATE or re.fullmatch(r"(\d+)x\1", v)]
