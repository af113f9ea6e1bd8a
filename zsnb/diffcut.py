"""DiffCut: zero-shot segmentation by recursive Normalized Cut on diffusion encoder features.

Couairon et al., "DiffCut: Catalyzing Zero-Shot Semantic Segmentation with Diffusion Features and
Recursive Normalized Cut", NeurIPS 2024 (official code: PaulCouairon/DiffCut, PyTorch). Tokens of the
UNet encoder's last self-attention output form a graph (affinity = min-max normalised cosine ** alpha);
Shi-Malik NCut splits it in two along the second generalised eigenvector, recursively, while the cut
costs less than tau. Each leaf's mean feature is a "concept"; pixels take the concept whose dot product
with the bilinearly upsampled feature is largest; PAMR (`zsnb.pamr`) and a 3x3 median filter refine.

Stages: `affinity`, `recursive_ncut` (`recursive_ncut_tree` also returns the tree; both run `ncut_tree`, the
recursion on any graph with any split rule; leaves numbered by `leaf_labels`; optional stop `spectral_gap`),
then `label_pixels`, the stages after any cut: `assign_concepts` and `zsnb.pamr.pamr`. `segment` runs them all
(`zsnb.segment("diffcut", ...)` feeds it a capture's features).

Official defaults: SSD-1B at 1024 px, t = 50, seeded noise (42), empty prompt, tap = output of
down_blocks[-1].attentions[-1].transformer_blocks[-1].attn1 (32 x 32 x 1280), tau = 0.5, alpha = 10,
100 thresholds in [0.99 min, 0.99 max] of the eigenvector, eval at 128 x 128 with PAMR (10 iterations,
dilations 1, 2, 4, 8) then a 3 x 3 median filter.
The layer is the "tap" parameter (`zsnb.parameters.DiffCutParams`); the organism's last encoder level is
4 x 4, so its tap is an 8 x 8 or 16 x 16 self-attention layer chosen on training scenes.

Deliberate deviations (on clean inputs the leaf partition is the official one; the tests check it):
- Recursion indexes the sub-matrix of the segment being split. The official code instead zeroes
  explored entries and drops every node whose row holds an exact 0, which also drops nodes whose
  affinity underflowed after ** alpha (and the pair at the global minimum), splintering the partition.
- Guards the official code lacks: both sides of a split hold at least `min_size` tokens (official: 1),
  nodes at `max_depth` are not split (official: unbounded), thresholds leaving a side empty are skipped,
  features whose cosines all agree within COSINE_ATOL form one segment (official: division by zero).
- The eigenvector is the top one of D^-1/2 W D^-1/2 with the trivial d^1/2 eigenvector deflated, found by
  Lanczos (ARPACK) above DENSE_MAX_TOKENS and by dense float64 `eigh` below (official: full float32
  `eigh` of D^-1/2 (D - W) D^-1/2, index 1). Same vector when the eigenvalue is simple; deflation keeps
  it orthogonal to the trivial one when eigenvalues are repeated. If a solver fails, the next one is
  tried, then a jittered dense `eigh`; if all fail the node stays a leaf (official: crash).
- The graph stage runs in float64 on the CPU; affinities below the smallest normal float64 are set to 0.
- NCut is evaluated as cut/assoc(A) + cut/assoc(B), equal to Shi-Malik's y'(D-W)y / y'Dy, for all 100
  thresholds in one matrix product (official: a Python loop).
- An optional stop the official code lacks, off by default (`recursive_ncut_tree(..., gap=CHAIN_GAP)`): a
  split is kept only if the segment's normalised-Laplacian spectrum has a gap (`spectral_gap` < gap). On a
  smooth feature field every region has cheap cuts (NCut < tau), but its spectrum grows without a jump;
  a chain, the most elongated continuum, has lambda_2 / lambda_3 -> 1/4 from above, hence CHAIN_GAP.
  benchmarks/results/diffcut.md measures it: it recovers the regions of synthetic fields with a smooth
  component, but on the organism's features the useful splits have no gap either, so it costs accuracy there
  and merges regions weaker than the smooth variation. Hence off.
- `assign_concepts` upsamples the k score maps instead of the C feature maps: bilinear interpolation is
  linear, so the scores are the same and memory is k/C of the official's.

Kept as official, worth knowing: leaves are numbered as the official code numbers them (`leaf_labels`),
not in visiting order. The numbering matters: the final 3 x 3 median filter ranks label indices, so a pixel
where three segments meet takes whichever label is numbered in the middle. Making the result independent
of the numbering (a majority filter) would change the official output; numbering as it does keeps it.
The graph has self-loops (diagonal 1). When a segment's summed affinity to
the rest of itself is below 1 (large alpha or noisy features), halving it costs NCut < 0.5, so the
recursion splits it down to the guards; min_size then bounds the number of segments by N / min_size.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse.linalg
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits  # installed with scikit-learn
from torch import Tensor

from zsnb.diffseg import size_pair
from zsnb.errors import ZsnbError
from zsnb.pamr import pamr
from zsnb.precision import as_real, real_dtype

N_THRESHOLDS: int = 100  # official: candidate split points along the eigenvector
THRESHOLD_MARGIN: float = 0.99  # official: candidates span [0.99 min, 0.99 max]
MIN_SIZE: int = 4  # ours: fewest tokens per segment (a 2 x 2 block on the 32 x 32 grid)
MAX_DEPTH: int = 10  # ours: at most 2**10 leaves, yet room for 11 segments peeled off one by one
DENSE_MAX_TOKENS: int = 128  # measured: dense eigh beats ARPACK's start-up cost below ~128 nodes
LANCZOS_TOL: float = 1e-8  # relative eigenvalue accuracy asked of ARPACK
LANCZOS_SEED: int = 0  # fixed start vector, so results are reproducible
EIGH_JITTER: float = 1e-10  # diagonal shift for the last-resort eigh retry
COSINE_ATOL: float = 1e-5  # float32 cosines of unit vectors carry ~1e-6 rounding error: below, no signal
GAP_EIGENVALUES: int = 8  # ours: the spectral-gap stop looks for a gap after lambda_2 .. lambda_8
EIGEN_ATOL: float = 1e-9  # float64 Laplacian eigenvalues below this are zero (rounding is ~1e-15)
CHAIN_GAP: float = 0.25  # lambda_2 / lambda_3 of a path graph, the most elongated continuum, tends to 1/4 from above
STOPS: tuple[str, ...] = ("split", "ncut >= tau", "min_size", "max_depth", "constant",
                          "eigensolver failed", "no valid threshold", "no spectral gap")


@dataclass(frozen=True)
class NCutNode:
    """One visited segment: `mask` (h, w) bool; `ncut` = best NCut of its own bipartition (nan: not tried)."""

    index: int  # position in visiting order (pre-order, "1" side first, as the official recursion)
    parent: int | None  # node whose split made this one; None for the root
    side: int | None  # 1: tokens above the parent's threshold, 0: below
    depth: int
    mask: Tensor
    ncut: float
    stop: str  # "split", or why this node is a leaf (one of STOPS)
    label: int | None  # leaf label in the output map (numbered as the official code: `leaf_labels`); None for splits


def _check_features(features: Any, name: str = "features") -> Tensor:
    """Validate (h, w, C) or (N, C) features; return them flattened to (N, C)."""
    if not isinstance(features, Tensor) or features.ndim not in (2, 3):
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ZsnbError(f"{name} must be a tensor (h, w, C) or (N, C); got {shape}.")
    flat = features.reshape(-1, features.shape[-1])
    if flat.shape[0] < 2 or flat.shape[1] < 1:
        raise ZsnbError(f"{name} has {flat.shape[0]} tokens of {flat.shape[1]} channels; a cut needs at "
                         "least two tokens with at least one channel.")
    if not torch.isfinite(flat).all():
        raise ZsnbError(f"{name} contains NaN or Inf; pass finite features (fp16 UNet overflow? "
                         "capture in float32).")
    return flat


def _check_positive(**values: float) -> None:
    """Raise ZsnbError naming the first argument that is not a finite positive number."""
    for name, v in values.items():
        if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise ZsnbError(f"{name}={v!r} must be a finite positive number (DiffCut: tau 0.5, alpha 10; "
                            "gap: CHAIN_GAP).")


def affinity(features: Tensor, alpha: float = 10.0) -> Tensor:
    """(h, w, C) or (N, C) features -> (N, N) float64 in [0, 1]: min-max normalised cosine ** alpha."""
    flat = _check_features(features)
    unit = F.normalize(as_real(flat), dim=1)
    return cosine_affinity((unit @ unit.T).double(), alpha)  # float32 product, float64 so ** alpha cannot underflow


def cosine_affinity(cos: Tensor, alpha: float = 10.0) -> Tensor:
    """(N, N) float64 cosines -> (N, N) float64 affinity in [0, 1]: min-max normalised, ** alpha."""
    _check_positive(alpha=alpha)
    lo, hi = cos.min(), cos.max()
    if hi - lo <= COSINE_ATOL:  # all tokens alike: no structure to cut, so one fully connected segment
        return torch.ones_like(cos)
    w = ((cos - lo) / (hi - lo)) ** alpha
    return w.masked_fill_(w < torch.finfo(w.dtype).tiny, 0.0)  # subnormals carry nothing and are slow


def _dense_top(m: Tensor, jitter: float = 0.0) -> Tensor:
    """Eigenvector (n,) of the largest eigenvalue of symmetric m (n, n), by dense eigh."""
    if jitter:
        m = m + jitter * torch.eye(len(m), dtype=m.dtype)
    return torch.linalg.eigh(m).eigenvectors[:, -1]


def _lanczos_top(m: Tensor) -> Tensor:
    """Eigenvector (n,) of the largest eigenvalue of symmetric m (n, n), by ARPACK."""
    v0 = np.random.default_rng(LANCZOS_SEED).standard_normal(len(m))
    # ARPACK's work is mat-vecs and vector updates, memory-bound: extra BLAS threads gain little and, on a
    # busy CPU, spin-wait for each other (many times slower with 2 threads on 2 shared cores).
    with threadpool_limits(limits=1, user_api="blas"):
        _, vec = scipy.sparse.linalg.eigsh(m.numpy(), k=1, which="LA", v0=v0, tol=LANCZOS_TOL)
    return torch.from_numpy(vec[:, 0])


def fiedler(w: Tensor, solver: str = "auto") -> Tensor | None:
    """Affinity (n, n) -> second generalised eigenvector (n,) of (D - W) x = lambda D x; None if unsolved.

    Sign convention: the largest-|value| entry is positive. solver: "auto", "dense" or "lanczos".
    """
    if solver not in ("auto", "dense", "lanczos"):
        raise ZsnbError(f"solver={solver!r}; use 'auto', 'dense' or 'lanczos'.")
    d = w.sum(1).clamp_min(torch.finfo(w.dtype).tiny)  # degrees; the self-loop keeps them >= ~1 in practice
    s = d.rsqrt()
    u = d.sqrt() / d.sqrt().norm()  # trivial eigenvector of M, eigenvalue 1
    # M = D^-1/2 W D^-1/2 has spectrum in [-1, 1]; moving the trivial pair to -1 makes the wanted vector
    # (second smallest of I - M) the top one.
    m = w * s[:, None] * s[None, :] - 2.0 * torch.outer(u, u)
    lanczos = solver == "lanczos" or (solver == "auto" and len(w) > DENSE_MAX_TOKENS)
    attempts = ([_lanczos_top] if lanczos else []) + [_dense_top, lambda a: _dense_top(a, EIGH_JITTER)]
    for attempt in attempts:
        try:
            vec = attempt(m)
        except (torch.linalg.LinAlgError, np.linalg.LinAlgError, scipy.sparse.linalg.ArpackError):
            continue  # ArpackNoConvergence is an ArpackError
        if torch.isfinite(vec).all():
            v = s * vec  # back to the generalised problem
            return v * torch.sign(v[v.abs().argmax()])
    return None


def best_threshold(v: Tensor, w: Tensor, min_size: int = 1) -> tuple[Tensor, float]:
    """Eigenvector v (n,), affinity w (n, n) -> (n,) bool "1" side of the lowest-NCut threshold, its NCut.

    NCut is inf when no threshold leaves at least min_size tokens on both sides.
    """
    n = len(v)
    t = torch.linspace(THRESHOLD_MARGIN * v.min().item(), THRESHOLD_MARGIN * v.max().item(), N_THRESHOLDS,
                       dtype=v.dtype)
    x = (v[:, None] > t[None, :]).to(w.dtype)  # (n, T): 1 on the "1" side of each candidate
    d = w.sum(1)
    assoc1 = d @ x  # (T,) assoc(A, V)
    assoc0 = d.sum() - assoc1  # (T,) assoc(B, V)
    cut = ((1 - x) * (w @ x)).sum(0)  # (T,) weight crossing each split
    size1 = x.sum(0)
    valid = (size1 >= min_size) & (n - size1 >= min_size)
    ncut = torch.where(valid, cut / assoc1 + cut / assoc0, torch.inf)
    best = int(ncut.argmin())  # first minimum, as the official list
    return x[:, best].bool(), float(ncut[best])


def spectral_gap(w: Tensor, k: int = GAP_EIGENVALUES) -> float:
    """Affinity (n, n) -> min over j = 2..k of lambda_j / lambda_(j+1), eigenvalues of I - D^-1/2 W D^-1/2.

    Small when the segment holds j well-separated groups (j near-zero eigenvalues, then a jump); a smooth
    continuum has eigenvalues growing like (j - 1)**2 at fastest (a chain), so its ratios stay above 1/4.
    0 when even lambda_(k+1) is zero: more than k disconnected pieces.
    """
    s = w.sum(1).clamp_min(torch.finfo(w.dtype).tiny).rsqrt()
    m = w * s[:, None] * s[None, :]
    top = min(k + 1, len(w))
    if len(w) > DENSE_MAX_TOKENS and top < len(w) - 1:
        v0 = np.random.default_rng(LANCZOS_SEED).standard_normal(len(m))
        with threadpool_limits(limits=1, user_api="blas"):  # see _lanczos_top
            mu = scipy.sparse.linalg.eigsh(m.numpy(), k=top, which="LA", v0=v0, tol=LANCZOS_TOL,
                                           return_eigenvectors=False)
        mu = torch.from_numpy(np.sort(mu)[::-1].copy())
    else:
        mu = torch.linalg.eigvalsh(m).flip(0)[:top]
    lam = (1 - mu).clamp_min(0.0)  # (top,) ascending; lam[0] = 0 is the trivial eigenvalue
    if lam[-1] <= EIGEN_ATOL:
        return 0.0
    return float((lam[1:-1] / lam[2:]).min()) if top > 2 else 1.0


def leaf_labels(nodes: list[NCutNode]) -> dict[int, int]:
    """Nodes in visiting order -> {leaf index: label}, labels 0..k-1 numbered as the official code numbers them.

    The official code stores the "1" side of every split in visiting order, gives the j-th stored mask a weight
    above the sum of all earlier ones (here 2**j), sums the weights of the masks holding each token and
    relabels the distinct sums in increasing order. A leaf's label is thus the rank of the sum of 2**j over
    the splits j whose "1" side holds it.
    """
    order = {node.index: j for j, node in enumerate(n for n in nodes if n.stop == "split")}
    codes = {}
    for node in nodes:
        if node.stop == "split":
            continue
        code, child = 0, node
        while child.parent is not None:
            code += child.side << order[child.parent]  # side 1: inside that split's stored mask
            child = nodes[child.parent]
        codes[node.index] = code
    return {index: rank for rank, index in enumerate(sorted(codes, key=codes.__getitem__))}


def ncut_tree(w_all: Tensor, threshold: Callable[[float | None], float], min_size: int = MIN_SIZE,
              max_depth: int = MAX_DEPTH, solver: str = "auto", gap: float | None = None
              ) -> tuple[Tensor, list[NCutNode]]:
    """Symmetric (N, N) float64 CPU graph -> (labels (N,) long in 0..k-1, nodes in visiting order, masks (N,)).

    A segment is split while its best NCut < threshold(NCut of the split that made it; None at the root):
    DiffCut's rule is a constant (`recursive_ncut_tree`), `zsnb.randomwalk` passes a parent-relative one.
    gap: see `recursive_ncut_tree`.
    """
    if not (isinstance(min_size, int) and min_size >= 1 and isinstance(max_depth, int) and max_depth >= 0):
        raise ZsnbError(f"min_size={min_size!r} must be an int >= 1 and max_depth={max_depth!r} an int >= 0 "
                        f"(defaults {MIN_SIZE} and {MAX_DEPTH}).")
    n = len(w_all)
    labels = torch.empty(n, dtype=torch.long)
    nodes: list[NCutNode] = []
    stack: list[tuple[Tensor, int, int | None, int | None]] = [(torch.arange(n), 0, None, None)]
    while stack:
        idx, depth, parent, side = stack.pop()
        w = w_all[idx][:, idx]  # (m, m) the sub-graph of this segment
        ncut, stop = math.nan, "split"
        if len(idx) < 2 * min_size:
            stop = "min_size"
        elif depth >= max_depth:
            stop = "max_depth"
        elif bool((w == w[0, 0]).all()):
            stop = "constant"
        elif (v := fiedler(w, solver)) is None:
            warnings.warn(f"eigensolvers failed on a {len(idx)}-token segment; it stays one segment.",
                          RuntimeWarning, stacklevel=3)
            stop = "eigensolver failed"
        else:
            part, ncut = best_threshold(v, w, min_size)
            tau = threshold(None if parent is None else nodes[parent].ncut)
            stop = "no valid threshold" if math.isinf(ncut) else "split" if ncut < tau else "ncut >= tau"
            if stop == "split" and gap is not None and spectral_gap(w) >= gap:
                stop = "no spectral gap"
        if stop == "split":
            here = len(nodes)
            stack.append((idx[~part], depth + 1, here, 0))
            stack.append((idx[part], depth + 1, here, 1))  # popped first: the "1" side is visited first
        mask = torch.zeros(n, dtype=torch.bool)
        mask[idx] = True
        nodes.append(NCutNode(len(nodes), parent, side, depth, mask, ncut, stop, None))
    ranks = leaf_labels(nodes)
    nodes = [replace(node, label=ranks.get(node.index)) for node in nodes]
    for node in nodes:
        if node.label is not None:
            labels[node.mask] = node.label
    return labels, nodes


def recursive_ncut_tree(features: Tensor, tau: float = 0.5, alpha: float = 10.0, min_size: int = MIN_SIZE,
                        max_depth: int = MAX_DEPTH, solver: str = "auto", gap: float | None = None
                        ) -> tuple[Tensor, list[NCutNode]]:
    """(h, w, C) or (N, C) features -> (labels (h, w) or (N,) long in 0..k-1, nodes in visiting order).

    gap: None splits whenever NCut < tau (official). A number also asks the segment's spectrum for separate
    groups: a split is kept only if `spectral_gap` < gap (CHAIN_GAP: no smooth continuum passes).
    """
    _check_positive(tau=tau)
    if gap is not None:
        _check_positive(gap=gap)
    grid = features.shape[:-1] if isinstance(features, Tensor) else ()
    w_all = affinity(features, alpha).cpu()  # validates features and alpha
    labels, nodes = ncut_tree(w_all, lambda _parent: tau, min_size, max_depth, solver, gap)
    nodes = [replace(node, mask=node.mask.reshape(grid)) for node in nodes]
    return labels.reshape(grid).to(features.device), nodes


def recursive_ncut(features: Tensor, tau: float = 0.5, alpha: float = 10.0, min_size: int = MIN_SIZE,
                   max_depth: int = MAX_DEPTH, solver: str = "auto") -> Tensor:
    """(h, w, C) features -> (h, w) long leaf labels 0..k-1 of recursive NCut ((N, C) -> (N,))."""
    return recursive_ncut_tree(features, tau, alpha, min_size, max_depth, solver)[0]


def assign_concepts(labels: Tensor, features: Tensor, out_size: int | tuple[int, int]) -> Tensor:
    """Labels (h, w), features (h, w, C) -> (out_size, out_size) long: argmax_k <upsampled f, concept_k>."""
    size = size_pair(out_size, "out_size")
    if not isinstance(features, Tensor) or features.ndim != 3:
        raise ZsnbError("features must be a (h, w, C) tensor.")
    _check_features(features)
    if not isinstance(labels, Tensor) or labels.shape != features.shape[:2] or labels.is_floating_point():
        got = getattr(labels, "shape", type(labels).__name__)
        raise ZsnbError(f"labels must be an integer (h, w) tensor matching features "
                         f"{tuple(features.shape[:2])}; got {got}.")
    unit = F.normalize(as_real(features), dim=-1)  # (h, w, C)
    ids, inverse = labels.flatten().unique(return_inverse=True)  # (k,), (h*w,)
    sums = unit.new_zeros(len(ids), unit.shape[-1]).index_add_(0, inverse, unit.flatten(0, 1))  # (k, C)
    concepts = sums / torch.bincount(inverse, minlength=len(ids))[:, None]  # (k, C) mean, not re-normalised
    scores = torch.einsum("hwc,kc->khw", unit, concepts)  # (k, h, w)
    up = F.interpolate(scores[None], size=size, mode="bilinear", align_corners=False)[0]  # (k, H, W)
    return ids[up.argmax(0)]


def segment(features: Tensor, image: Tensor | None = None, tau: float = 0.5, alpha: float = 10.0,
            out_size: int | tuple[int, int] | None = None, refine: bool = True, min_size: int = MIN_SIZE,
            max_depth: int = MAX_DEPTH, pamr_iterations: int = 10,
            pamr_dilations: tuple[int, ...] = (1, 2, 4, 8)) -> Tensor:
    """Features (h, w, C), image (3, H, W) in [0, 1] -> labels (out_size) long; None: image's or (h, w).

    refine=True needs the image: it is resized bilinearly to out_size, then PAMR and a 3 x 3 median run.
    """
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(features)
    _check_image(image, refine)
    leaves = recursive_ncut(features, tau, alpha, min_size, max_depth)
    return label_pixels(leaves, features, image, out_size, refine, pamr_iterations, pamr_dilations)


def _check_image(image: Tensor | None, refine: bool) -> None:
    """ZsnbError unless image is None or (3, H, W), and present when refine=True."""
    if refine and image is None:
        raise ZsnbError("refine=True needs image (3, H, W) in [0, 1]; pass image=... or refine=False.")
    if image is not None and (not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] != 3):
        got = getattr(image, "shape", type(image).__name__)
        raise ZsnbError(f"image must be a (3, H, W) tensor in [0, 1]; got {got}.")


def label_pixels(leaves: Tensor, features: Tensor, image: Tensor | None = None,
                 out_size: int | tuple[int, int] | None = None, refine: bool = True, pamr_iterations: int = 10,
                 pamr_dilations: tuple[int, ...] = (1, 2, 4, 8)) -> Tensor:
    """Leaf labels (h, w) of any cut -> pixel labels (out_size) long: concepts, then PAMR when refine (DiffCut's
    stages after the cut)."""
    _check_image(image, refine)
    if out_size is None:
        out_size = tuple(image.shape[1:]) if image is not None else tuple(features.shape[:2])
    size = size_pair(out_size, "out_size")
    labels = assign_concepts(leaves, features, size)
    if not refine:
        return labels
    small = F.interpolate(image[None].to(real_dtype(features)), size=size, mode="bilinear", align_corners=False)[0]
    return pamr(small, labels.to(small.device), pamr_iterations, tuple(pamr_dilations))
