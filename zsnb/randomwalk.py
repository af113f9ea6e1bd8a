"""Random-walk normalized cuts on self-attention (Ivanova, Aversa, Henderson, Williamson).

"Unsupervised Segmentation by Diffusing, Walking and Cutting", arXiv 2412.04678 (v2), WACV 2026. Each row of
a self-attention map is a probability distribution over keys, so the aggregated map P (N x N, N = R*R tokens)
is the transition matrix of a random walk between patches; P^k holds k-step (multi-hop) transitions. The
image is split in two by a normalized cut of that walk, recursively, with an automatic stopping threshold.

Random-walk NCut (Meila & Shi's view, derived here for a walk that need not be reversible). Let pi be the
stationary distribution (pi P = pi). Started from pi, the probability of stepping from A to B is
flow(A, B) = sum_{i in A, j in B} pi_i P_ij, and stationarity balances it: flow(A, B) = flow(B, A) for any
bipartition. Hence with the symmetric flow graph W = (Pi P + P^T Pi) / 2 (Pi = diag(pi)), whose degrees are
pi, Shi-Malik's NCut of W equals P(A -> B | A) + P(B -> A | B): the cut keeps the walker on its side.
Everything NCut needs then comes from `zsnb.diffcut` (`fiedler`, `best_threshold`) applied to W. With P^k in
place of P (pi is stationary for P^k too) the same holds for k-step walks. Writing e = 1 - NCut,
P(A -> A | A) = pi(A) + e (1 - pi(A)): e is how much better than chance the walk remembers its side, and a
walk that forgets in one step (P = 1 pi^T) gives NCut = 1 for every cut.

Automatic threshold (threshold=None): the root is split when its best cut beats that chance level (NCut < 1);
every later segment is split again only when its own best cut is cheaper than the cut that made it (its
parent's NCut): a segment stays whole when its inside holds no boundary as clear as its outline. No number
is tuned. Limitation: the root test has no margin, so a walk with no structure but some noise still gets a
few segments (noise pushes its best cut just below 1); inside a real segment the parent rule stops it.
A float threshold gives DiffCut's constant rule (split while NCut < threshold).

Stages: `transition_matrix` (aggregate + checks), `stationary`, `power`, `flow_graph` or `adjacency`,
`recursive_cut` (+ `auto_threshold`), `assign`; `segment` runs them.

What the paper states. Only its abstract (arXiv v2 and the WACV 2026 programme), its introduction and two
third-party summaries could be read; the stored copies end before the method section, so no table, default,
formula or number below was read from the paper itself (searched again for issue #16: same result). From those:
self-attention of Stable Diffusion, taken during DDIM inversion (10 of 50 steps) and summed with weights over
layers and resolutions, is used as a random-walk transition matrix; NCut is applied to it directly or to an
adjacency built from attention similarity; P^k (multi-hop transitions) sets the granularity; the NCut
threshold is chosen automatically, with no parameter to tune. Its reported numbers (COCO-Stuff-27,
Cityscapes, ADE20K) were not retrieved, so the registry holds none.

Our choices and deviations (each is ours, not read from the paper):
- Aggregation is DiffSeg's (`zsnb.diffseg.aggregate`: layers of one resolution averaged, keys bilinearly
  resized to the largest side R, resolutions weighted by side). Maps of several timesteps are averaged;
  `capture` runs one UNet pass per timestep on the clean latent (noise "none"), not a DDIM inversion.
- The organism has self-attention at 16/8/4 (R = 16, 256 tokens) instead of SD's 64/32/16/8 (4096).
- The automatic threshold (above) is ours: the paper's rule was not retrieved.
- P^k is exact, by exponentiation by squaring (`torch.linalg.matrix_power`: floor(log2 k) squarings and
  popcount(k) - 1 more products) in float32 (float64 for float64 attention, the organism's). An
  eigendecomposition would need a reversible chain (attention is not) and one full `eigh`, which costs more
  than squaring for small k (benchmarks/results/randomwalk.md times both against the recursive cuts).
  The cut stage runs in float64 (`diffcut`).
- Sub-segments are cut on the flow graph restricted to their tokens (walks that leave the segment are
  dropped), by DiffCut's recursion (`zsnb.diffcut.ncut_tree`, leaves numbered as there); P^k is not
  recomputed per segment.
- The adjacency variant is the cosine similarity of the rows of P^k (graph="adjacency").
- Guards as in `zsnb.diffcut`: both sides of a split keep >= min_size tokens, depth <= max_depth.
- Labels go to pixels as in DiffSeg: each segment's mean attention row (of P) is bilinearly upsampled and
  every pixel takes the segment whose map is largest (`zsnb.diffseg.assign`); no PAMR.

Defaults are all ours (`zsnb.parameters.RandomWalkParams`): k = 1, the transition graph and the automatic
threshold, chosen on the organism's training scenes by object-level mIoU (benchmarks/randomwalk.md): the walk
on the organism's aggregated attention forgets its start within a few steps, so powers wash out its segments
(notebook 08 shows it). SD1.x / SDXL take the same values at DiffSeg's timestep (the paper's k and inversion
schedule were not retrieved); the ViT reads its last block's attention.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from zsnb.diffcut import MAX_DEPTH, MIN_SIZE, NCutNode, ncut_tree
from zsnb.diffseg import SUM_TOLERANCE, aggregate, assign, size_pair
from zsnb.errors import ZsnbError
from zsnb.precision import real_dtype

GRAPHS: tuple[str, ...] = ("transition", "adjacency")
CHANCE_NCUT: float = 1.0  # NCut of every cut of a walk that forgets its start in one step (P = 1 pi^T)


def transition_matrix(maps_or_aggregated: Any) -> Tensor:
    """{layer: (r*r, r*r)}, (R, R, R, R) aggregated or (N, N) maps, tensor or numpy -> (N, N) P.

    Rows are checked to be probability distributions (within diffseg.SUM_TOLERANCE) and renormalised in
    float64; P comes back in the input's working precision (float64 stays float64, the rest float32).
    """
    x = maps_or_aggregated
    if isinstance(x, Mapping):
        x = aggregate({name: torch.as_tensor(m) for name, m in x.items()})
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise ZsnbError(f"pass attention as a tensor or numpy array, or a dict of layer maps; got "
                        f"{type(x).__name__}.")
    if x.ndim == 4 and len(set(x.shape)) == 1:
        x = x.reshape(x.shape[0] ** 2, -1)
    if x.ndim != 2 or x.shape[0] != x.shape[1] or math.isqrt(x.shape[0]) ** 2 != x.shape[0]:
        raise ZsnbError(f"attention has shape {tuple(x.shape)}; pass (N, N) with N = R*R tokens, (R, R, R, R) "
                        "from diffseg.aggregate, or {layer: (r*r, r*r)} maps.")
    p = x.double()
    if not torch.isfinite(p).all() or (p.min() < 0).item():
        raise ZsnbError("attention has NaN, Inf or negative entries; pass softmax probabilities, not logits.")
    sums = p.sum(1)
    worst = (sums - 1).abs().max().item()
    if worst > SUM_TOLERANCE:
        raise ZsnbError(f"attention rows must sum to 1 (worst deviation {worst:.3g}): each row is a random "
                        "walk's transition distribution; pass row-stochastic (head-averaged) maps.")
    return (p / sums[:, None]).to(real_dtype(x))


def stationary(p: Tensor) -> Tensor:
    """Row-stochastic (N, N) -> (N,) float64 stationary distribution pi (pi P = pi, sum 1), by one solve."""
    n = len(p)
    a = (torch.eye(n, dtype=torch.float64) - p.double()).T.contiguous()
    a[-1] = 1.0  # one balance equation is redundant; replace it by the normalisation sum(pi) = 1
    b = torch.zeros(n, dtype=torch.float64)
    b[-1] = 1.0
    try:
        pi = torch.linalg.solve(a, b)
    except torch.linalg.LinAlgError:
        pi = torch.full((n,), math.nan, dtype=torch.float64)
    if not torch.isfinite(pi).all() or (pi.min() < -1e-9).item():
        raise ZsnbError("the walk has no unique stationary distribution (P is reducible: some tokens never "
                        "reach others); mix in a little uniform attention, e.g. P = 0.99 P + 0.01 / N.")
    return pi.clamp_min(0) / pi.clamp_min(0).sum()


def power(p: Tensor, k: int) -> Tensor:
    """(N, N) row-stochastic -> P^k (N, N), same dtype: k-step transitions, by exponentiation by squaring."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ZsnbError(f"k={k!r} must be an integer >= 1 (the number of random-walk steps; 1 is P itself).")
    return torch.linalg.matrix_power(p, int(k))


def flow_graph(pk: Tensor, pi: Tensor) -> Tensor:
    """P^k (N, N), stationary pi (N,) -> (N, N) float64 symmetric W = (Pi P^k + P^kT Pi) / 2, degrees pi."""
    flow = pi.double()[:, None] * pk.double()
    return (flow + flow.T) / 2


def adjacency(pk: Tensor) -> Tensor:
    """P^k (N, N) -> (N, N) float64 cosine similarity of its rows, in [0, 1] (rows are non-negative)."""
    unit = F.normalize(pk.double(), dim=1)
    return (unit @ unit.T).clamp_(0.0, 1.0)


def auto_threshold(parent_ncut: float | None) -> float:
    """NCut a segment's best cut must beat: chance (1) at the root, else the NCut that made the segment."""
    return CHANCE_NCUT if parent_ncut is None else min(parent_ncut, CHANCE_NCUT)


def recursive_cut(w: Tensor, threshold: float | None = None, min_size: int = MIN_SIZE, max_depth: int = MAX_DEPTH,
                  solver: str = "auto") -> tuple[Tensor, list[NCutNode]]:
    """Symmetric graph (N, N) -> (labels (N,) long 0..k-1, visited nodes); threshold None: automatic."""
    if threshold is not None and not (isinstance(threshold, int | float) and 0 < threshold and
                                      math.isfinite(threshold)):
        raise ZsnbError(f"threshold={threshold!r} must be None (automatic) or a finite positive NCut.")
    rule = auto_threshold if threshold is None else (lambda _parent: threshold)
    return ncut_tree(w.double().cpu(), rule, min_size, max_depth, solver)


def segment_maps(p: Tensor, labels: Tensor) -> Tensor:
    """P (N, N), token labels (N,) 0..k-1 -> (k, R, R) mean attention row of each segment."""
    r = math.isqrt(len(p))
    sums = torch.zeros(int(labels.max()) + 1, len(p), dtype=p.dtype).index_add_(0, labels, p)
    return (sums / torch.bincount(labels)[:, None]).reshape(-1, r, r)


def segment(maps_or_aggregated: Any, k: int = 1, graph: str = "transition", threshold: float | None = None,
            out_size: int | tuple[int, int] = 512, min_size: int = MIN_SIZE, max_depth: int = MAX_DEPTH) -> Tensor:
    """Attention (see transition_matrix) -> (H, W) = out_size long labels 0..k'-1; threshold None: automatic."""
    if graph not in GRAPHS:
        raise ZsnbError(f"graph={graph!r}; use 'transition' (random-walk NCut) or 'adjacency' (cosine of rows).")
    size_pair(out_size)  # fail before the cuts, not after
    p = transition_matrix(maps_or_aggregated)
    pk = power(p, k)  # the one dense O(N^3) step: float32 GEMMs unless the attention is float64
    w = flow_graph(pk, stationary(p)) if graph == "transition" else adjacency(pk)
    labels, _ = recursive_cut(w, threshold, min_size, max_depth)
    return assign(segment_maps(p, labels), out_size)
