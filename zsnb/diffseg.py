"""DiffSeg: unsupervised zero-shot segmentation by merging Stable Diffusion self-attention maps.

Tian et al., "Diffuse, Attend, and Segment: Unsupervised Zero-Shot Segmentation using Stable
Diffusion", CVPR 2024 (official code: google/diffseg, TensorFlow). Every query pixel's self-attention
row is a probability map over key pixels; pixels of one object attend alike, so merging maps that are
close in symmetric KL divergence yields object proposals, and a per-pixel argmax yields the label map.

Stages: `aggregate` (multi-resolution maps -> (R, R, R, R)), `anchor_grid`, `proposals` (iterative
merging, via `merge_anchors` then `merge_greedy`), optional `kmeans_refine`, `assign` (upsample +
argmax, the paper's "NMS"); `segment` runs them all (`zsnb.segment("diffseg", ...)` feeds it a capture's
maps); `label_segments` names segments from cross-attention.

Official defaults: SD v1.4, clean latent (no noise), t = 300, empty prompt, all 16 self-attention layers
(64/32/16/8 with 5/5/5/1 layers), resolution weights [64, 32, 16, 8] / 120, 16 x 16 anchors at
linspace(1, 61, 16) on the 64 grid, 3 iterations, tau = 1.1 (COCO-Stuff-27; 0.9 for Cityscapes and the
demo), K-means refinement off in benchmarks (on in the demo), x8 bilinear upsampling to 512, argmax.

Deliberate deviations (labels are otherwise those of the official algorithm):
- float32 throughout, float64 for float64 maps (the organism: same labels on every CPU) (official: float64
  aggregate, float16 KL in iteration 0); the tests check that a float64 reference gives identical labels.
- KL uses two matrix products plus entropy terms instead of a broadcast; logs are taken of values
  clamped at the smallest normal float32, so zeros give a large finite divergence (official: NaN, which
  never compares below tau).
- Generalised to any resolution R and grid size M (the official code hardcodes 64, 63 and x8); one
  iteration is allowed (the official code needs two); a map always matches itself, even for tiny tau.
- Explicit `weights` are renormalised to sum 1, so aggregated rows stay probability distributions.
- Labels are compacted to 0..k-1 (official: ids of proposals that win no pixel leave gaps); empty
  K-means clusters are dropped (official: NaN proposal).
- `label_segments` returns {segment: word} from given token indices; no BLIP captioning, no NLTK.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from zsnb.errors import ZsnbError
from zsnb.precision import as_real, real_dtype

# Floor for log(): the smallest normal float32. Values above it are untouched; zeros get a finite log.
LOG_FLOOR: float = torch.finfo(torch.float32).tiny
# Rows must sum to 1 within this; attention computed in float16 is normalised only to ~1e-3.
SUM_TOLERANCE: float = 1e-2


def _check_distributions(maps: Tensor, name: str) -> Tensor:
    """(N, D) -> (N,) row sums; ZsnbError unless every row is a finite, non-negative distribution."""
    sums = maps.sum(dim=1, dtype=torch.float32)  # NaN and Inf propagate into the sums
    if not torch.isfinite(sums).all():
        raise ZsnbError(f"{name} contains NaN or Inf; pass finite attention probabilities.")
    if (maps.min() < 0).item():
        raise ZsnbError(f"{name} has negative entries; pass probabilities (softmax outputs), not logits.")
    worst = (sums - 1).abs().max().item()
    if worst > SUM_TOLERANCE:
        raise ZsnbError(f"{name}: rows must sum to 1 (worst deviation {worst:.3g}); pass row-stochastic "
                         "attention probabilities averaged over heads.")
    return sums


def _side(n: int, name: str) -> int:
    """Side r of a square map with n = r * r pixels, else ZsnbError."""
    r = math.isqrt(n)
    if r * r != n:
        raise ZsnbError(f"{name}: {n} pixels is not a square map; pass maps of square r x r images.")
    return r


def _as_tensor(x: Any, name: str) -> Tensor:
    """A tensor or numpy array as a tensor (shared memory); ZsnbError naming `name` for anything else."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise ZsnbError(f"{name} is a {type(x).__name__}; pass a torch tensor or a numpy array.")
    return x


def size_pair(size: int | Sequence[int], name: str = "out_size") -> tuple[int, int]:
    """int or (H, W) -> (H, W) of positive ints, else ZsnbError naming the argument."""
    pair = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, numbers.Integral) and s >= 1 for s in pair):
        raise ZsnbError(f"{name}={size!r} must be a positive int or a pair (H, W) of positive ints.")
    return int(pair[0]), int(pair[1])


def _interp_matrix(r: int, size: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """(size, r) matrix of 1-D linear interpolation, half-pixel centres like tf.image.resize."""
    eye = torch.eye(r, dtype=dtype)[:, None, :]  # (r, 1, r): one impulse per source pixel
    return F.interpolate(eye, size=size, mode="linear", align_corners=False)[:, 0, :].T


def aggregate(maps: Mapping[str, Tensor | np.ndarray], out_res: int | None = None,
              weights: Mapping[int, float] | None = None) -> Tensor:
    """{layer: (r*r, r*r) row-stochastic} -> (R, R, R, R) float32 (float64 if the maps are): [qy, qx, ky, kx].

    Layers of one resolution are averaged; each key map is bilinearly resized to R x R and renormalised;
    query axes are tiled to R x R by nearest repeat; resolutions are summed with weight proportional to
    r (official [64, 32, 16, 8] / 120) or to `weights` {r: w} (renormalised to sum 1).
    R = out_res, default the largest r present.
    """
    if not maps:
        raise ZsnbError("maps is empty; pass {layer_name: (Q, K) self-attention probabilities}.")
    by_res: dict[int, list[tuple[Tensor, Tensor]]] = {}  # r -> [(map, row sums)]
    for name, m in maps.items():
        m = _as_tensor(m, f"maps[{name!r}]")
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise ZsnbError(f"maps[{name!r}] has shape {tuple(m.shape)}; pass (Q, K) with Q == K == r*r.")
        sums = _check_distributions(m, f"maps[{name!r}]")
        by_res.setdefault(_side(m.shape[0], f"maps[{name!r}]"), []).append((m, sums))
    R = out_res if out_res is not None else max(by_res)
    if R < 1:
        raise ZsnbError(f"out_res={out_res} must be a positive integer.")
    if weights is None:
        weights = {r: float(r) for r in by_res}
    missing = set(by_res) - set(weights)
    total = sum(weights.get(r, 0.0) for r in by_res)
    if missing or not all(w >= 0 and math.isfinite(w) for w in weights.values()) or not total > 0:
        raise ZsnbError(f"weights={dict(weights)}: give a finite non-negative weight, not all zero, for "
                         f"every resolution present {sorted(by_res)} (missing {sorted(missing)}).")
    dtype = real_dtype(next(iter(maps.values())))
    out = torch.zeros(R, R, R * R, dtype=dtype)
    for r, layers in by_res.items():
        keys = [m.to(dtype).reshape(r * r, r * r) for m, _ in layers]  # (Q, r*r) per layer
        mass = sum(s for _, s in layers)  # (Q,) row sums of the summed layers, from the check
        if r != R:  # bilinear resizing is linear: resize the sum once, as two interpolation-matrix products
            u = _interp_matrix(r, R, dtype)  # (R, r)
            keys = [(u @ (sum(keys[1:], keys[0]).view(r * r, r, r) @ u.T)).reshape(r * r, R * R)]
            mass = keys[0].sum(1)  # resizing changes each map's mass
        # Averaging then renormalising equals summing then renormalising: scale by the summed mass.
        scale = weights[r] / total / mass
        for x in keys:
            _add_tiled(out, x, scale)
    return out.view(R, R, R, R)


def _add_tiled(out: Tensor, x: Tensor, scale: Tensor) -> None:
    """out (R, R, R*R) += scale (Q,) * x (Q, R*R), tiling the r x r query grid to R x R by nearest repeat."""
    R, r = out.shape[0], math.isqrt(x.shape[0])
    if R % r == 0:  # a broadcast view: no (R*R, R*R) temporary
        f = R // r
        out.view(r, f, r, f, R * R).addcmul_(x.view(r, 1, r, 1, R * R), scale.view(r, 1, r, 1, 1))
    else:  # torch "nearest": output query i reads source floor(i * r / R)
        src = torch.arange(R) * r // R
        out += (x * scale[:, None])[(src[:, None] * r + src[None, :]).flatten()].view(R, R, R * R)


def anchor_grid(res: int, num_points: int) -> Tensor:
    """(M*M, 2) long (row, col) anchors on an R grid, row-major; official linspace(1, 61, 16) at R=64, M=16.

    Step s = (R-1) // (M-1), span = s*(M-1), offset = (R-1-span) // 2: coords offset + s*k; M=1 -> centre.
    """
    if not 1 <= num_points <= res:
        raise ZsnbError(f"num_points={num_points} must be in 1..{res} (the attention resolution); "
                         "use a smaller grid.")
    step = (res - 1) // (num_points - 1) if num_points > 1 else 0
    coords = (res - 1 - step * (num_points - 1)) // 2 + step * torch.arange(num_points)
    return torch.cartesian_prod(coords, coords)


def symmetric_kl(p: Tensor, q: Tensor, log_p: Tensor | None = None, log_q: Tensor | None = None,
                 paired: bool = False) -> Tensor:
    """(A, D), (N, D) row distributions -> (A, N) KL(p||q)/2 + KL(q||p)/2; logs of values >= LOG_FLOOR.

    All pairs are expanded as (Σp log p + Σq log q - p·log qᵀ - log p·qᵀ) / 2: two GEMMs, no (A, N, D)
    broadcast. paired=True: p and q of one shape (..., D), row i against row i only -> (...,).
    """
    log_p = p.clamp_min(LOG_FLOOR).log_() if log_p is None else log_p
    log_q = q.clamp_min(LOG_FLOOR).log_() if log_q is None else log_q
    if paired:
        return 0.5 * ((p - q) * (log_p - log_q)).sum(-1)
    h_p = torch.linalg.vecdot(p, log_p)  # (A,) negative entropies
    h_q = torch.linalg.vecdot(q, log_q)  # (N,)
    return 0.5 * (h_p[:, None] + h_q[None, :] - p @ log_q.T - log_p @ q.T)


def merge_anchors(flat: Tensor, anchors: Tensor, tau: float, log_flat: Tensor | None = None) -> Tensor:
    """Iteration 0: (N, D) maps, (A,) row indices -> (A, D) means of all maps within tau of each anchor."""
    log_flat = flat.clamp_min(LOG_FLOOR).log_() if log_flat is None else log_flat
    close = symmetric_kl(flat[anchors], flat, log_flat[anchors], log_flat) < tau  # (A, N)
    close[torch.arange(len(anchors)), anchors] = True  # a map always matches itself
    close = close.to(flat.dtype)
    return (close @ flat) / close.sum(1, keepdim=True)


def merge_greedy(props: Tensor, tau: float) -> Tensor:
    """Later iterations: (n, D) -> (k <= n, D); visit unmatched proposals in order, average all within tau.

    As in the official code, proposals already matched are skipped as seeds but still join later groups.
    """
    close = symmetric_kl(props, props) < tau  # (n, n), fixed during the pass
    close.fill_diagonal_(True)
    matched = torch.zeros(len(props), dtype=torch.bool)
    groups = []
    for i in range(len(props)):
        if not matched[i]:
            matched |= close[i]
            groups.append(close[i])
    members = torch.stack(groups).to(props.dtype)  # (k, n)
    return (members @ props) / members.sum(1, keepdim=True)


def _thresholds(kl_threshold: float | Sequence[float], iterations: int) -> list[float]:
    """One validated threshold per iteration."""
    if iterations < 1:
        raise ZsnbError(f"iterations={iterations} must be at least 1.")
    taus = [kl_threshold] * iterations if isinstance(kl_threshold, numbers.Real) else list(kl_threshold)
    if len(taus) != iterations:
        raise ZsnbError(f"kl_threshold has {len(taus)} values but iterations={iterations}; "
                         "pass one value per iteration or a single float.")
    if not all(math.isfinite(t) and t > 0 for t in taus):
        raise ZsnbError(f"kl_threshold={kl_threshold} must be finite and positive (official 0.9-1.1).")
    return taus


def proposals(aggregated: Tensor | np.ndarray, kl_threshold: float | Sequence[float] = 1.1, num_points: int = 16,
              iterations: int = 3) -> list[Tensor]:
    """(R, R, R, R) -> one (n_i, R, R) tensor of merged proposals per iteration (n_0 = num_points**2)."""
    aggregated = _as_tensor(aggregated, "aggregated")
    if aggregated.ndim != 4 or len(set(aggregated.shape)) != 1:
        raise ZsnbError(f"aggregated has shape {tuple(aggregated.shape)}; "
                         "pass (R, R, R, R) maps from aggregate().")
    R = aggregated.shape[0]
    taus = _thresholds(kl_threshold, iterations)
    grid = anchor_grid(R, num_points)
    flat = as_real(aggregated.reshape(R * R, R * R))
    _check_distributions(flat, "aggregated")
    props = merge_anchors(flat, grid[:, 0] * R + grid[:, 1], taus[0])
    stages = [props]
    for tau in taus[1:]:
        props = merge_greedy(props, tau)
        stages.append(props)
    return [s.view(-1, R, R) for s in stages]


def kmeans_refine(aggregated: Tensor, props: Tensor) -> Tensor:
    """K-means over all R*R maps seeded by (k, R, R) proposals -> (k' <= k, R, R) cluster means."""
    from sklearn.cluster import KMeans  # imported here: only the optional refinement needs sklearn

    R = aggregated.shape[0]
    flat = aggregated.reshape(R * R, R * R).to(props.dtype)
    init = props.reshape(len(props), -1).numpy()
    labels = KMeans(n_clusters=len(props), init=init, n_init=1).fit(flat.numpy()).labels_
    ids, inverse = torch.from_numpy(labels).unique(return_inverse=True)  # drops empty clusters
    sums = torch.zeros(len(ids), R * R, dtype=flat.dtype).index_add_(0, inverse, flat)
    return (sums / torch.bincount(inverse)[:, None]).view(-1, R, R)


def assign(props: Tensor, out_size: int | tuple[int, int]) -> Tensor:
    """(k, R, R) proposals -> (H, W) = out_size long labels 0..k'-1: bilinear upsample, argmax, compact."""
    up = F.interpolate(as_real(props[None]), size=size_pair(out_size), mode="bilinear", align_corners=False)
    winner = up[0].max(0).indices  # ties go to the first proposal, as tf.argmax; faster than argmax(0)
    used = torch.zeros(len(props), dtype=torch.long).index_fill_(0, winner.flatten(), 1)
    return (used.cumsum(0) - 1)[winner]  # compact: proposals that win no pixel leave no gap


def segment(aggregated: Tensor | np.ndarray, kl_threshold: float | Sequence[float] = 1.1, num_points: int = 16,
            iterations: int = 3, refine: bool = False, out_size: int | tuple[int, int] = 512) -> Tensor:
    """(R, R, R, R) aggregated maps -> (H, W) = out_size long label map with labels 0..k-1.

    kl_threshold: one float, or one per iteration. num_points: anchors per side (num_points**2 anchors).
    """
    size_pair(out_size)  # fail before the merge, not after
    aggregated = _as_tensor(aggregated, "aggregated")
    props = proposals(aggregated, kl_threshold, num_points, iterations)[-1]
    if refine:
        props = kmeans_refine(aggregated, props)
    return assign(props, out_size)


def label_segments(labels: Tensor, cross_attention: Tensor, tokens: Mapping[str, int]) -> dict[int, str]:
    """(H, W) labels, (h, w, T) or (h*w, T) cross-attention, {word: token index} -> {segment id: word}.

    Official "mean" vote: attention is resized to H x W (bilinear), renormalised over all T tokens, each
    chosen token's map L2-normalised spatially; a segment gets the word with the highest mean inside it.
    Token indices address the T axis directly (include the BOS offset yourself).
    """
    if cross_attention.ndim == 2:
        s = _side(cross_attention.shape[0], "cross_attention")
        cross_attention = cross_attention.reshape(s, s, -1)
    if cross_attention.ndim != 3 or labels.ndim != 2:
        raise ZsnbError("pass labels (H, W) and cross_attention (h, w, T) or (h*w, T).")
    if not torch.isfinite(cross_attention).all() or (cross_attention.min() < 0).item():
        raise ZsnbError("cross_attention must be finite and non-negative (attention probabilities).")
    n_tok = cross_attention.shape[-1]
    if not tokens or not all(0 <= i < n_tok for i in tokens.values()):
        raise ZsnbError(f"tokens must map words to indices in 0..{n_tok - 1}; got {dict(tokens)}.")
    x = cross_attention.permute(2, 0, 1)[None].float()  # (1, T, h, w)
    x = F.interpolate(x, size=tuple(labels.shape), mode="bilinear", align_corners=False)[0]
    x = x / x.sum(0, keepdim=True).clamp_min(LOG_FLOOR)  # renormalise over tokens per pixel
    words = list(tokens)
    sel = x[list(tokens.values())].flatten(1)  # (n_words, H*W)
    sel = sel / sel.norm(dim=1, keepdim=True).clamp_min(LOG_FLOOR)
    ids, inverse = labels.flatten().unique(return_inverse=True)
    sums = torch.zeros(len(ids), len(words)).index_add_(0, inverse, sel.T)
    best = (sums / torch.bincount(inverse)[:, None]).argmax(1)
    return {int(i): words[int(b)] for i, b in zip(ids, best, strict=True)}
