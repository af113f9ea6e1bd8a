"""Per-token timestep maps: label-free criteria that pick a timestep per token, and ways to segment with one.

Our design (arXiv 2606.15590 describes per-pixel timesteps in words only; docs/reference.md). A *t map* is a
(N,) long tensor of indices into an increasing timestep grid, one per token of the R x R attention grid.

Criteria (one knob each; scores per token are scaled to [0, 1] over t before the knob applies):
- "entropy": argmin over t of row entropy - knob * t-rank (knob > 0 leans towards larger t);
- "agreement": the same with symmetric-KL disagreement with the 4 neighbours;
- "stability": the first t at which the token's row stops changing (symmetric KL to the next t < knob);
- "growth": the first t at which the token's segment (static grouping at that t) has grown to knob times its
  area at the smallest t, i.e. has merged across a part boundary;
- a learned selector (`fit_selector`): multinomial logistic regression from the per-token statistics at every
  t to a label, e.g. the oracle t.
Pipelines that take a t map: `mix_rows` (row i read at t_i), `smooth` (a mode filter before mixing),
`ncut_pairwise` (tokens i and j compared at the coarser of t_i, t_j), `region_select` (a tree of static
segmentations from the largest t down, each region cut to the next smaller t while its tokens ask for it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from zsnb import diffcut, diffseg
from zsnb.diffseg import LOG_FLOOR
from zsnb.errors import ZsnbError
from zsnb.precision import as_real

CRITERIA: tuple[str, ...] = ("entropy", "agreement", "stability", "growth")
STATISTICS: tuple[str, ...] = ("entropy", "change", "disagreement", "log_area")


def stack(maps_by_t: Mapping[int, Tensor] | Sequence[Tensor]) -> Tensor:
    """{t: (N, N)} in increasing t, or a sequence of (N, N) -> (T, N, N); ZsnbError if unusable."""
    if isinstance(maps_by_t, Mapping):
        ts = list(maps_by_t)
        if ts != sorted(ts) or len(set(ts)) != len(ts):
            raise ZsnbError(f"maps_by_t keys {ts} must be distinct timesteps in increasing order.")
        maps_by_t = list(maps_by_t.values())
    if len(maps_by_t) == 0 or len({tuple(m.shape) for m in maps_by_t}) != 1 or maps_by_t[0].ndim != 2:
        raise ZsnbError("maps_by_t must hold at least one map, all of the same shape (R*R, R*R).")
    return torch.stack([as_real(m) for m in maps_by_t])


def entropy(maps: Tensor) -> Tensor:
    """(..., D) row distributions -> (...) Shannon entropy in nats."""
    return -(maps * maps.clamp_min(LOG_FLOOR).log()).sum(-1)


def disagreement(maps: Tensor) -> Tensor:
    """(R*R, D) per-token maps -> (R*R,) mean symmetric KL to the token's 4-neighbours inside the grid."""
    R = diffseg._side(maps.shape[0], "maps")
    x = maps.reshape(R, R, -1)
    logs = x.clamp_min(LOG_FLOOR).log()
    total = torch.zeros(R, R, dtype=x.dtype)
    count = torch.zeros(R, R, dtype=x.dtype)
    for dim in (0, 1):  # each neighbour pair once, credited to both tokens
        a, b = x.narrow(dim, 0, R - 1), x.narrow(dim, 1, R - 1)
        kl = diffseg.symmetric_kl(a, b, logs.narrow(dim, 0, R - 1), logs.narrow(dim, 1, R - 1), paired=True)
        for offset in (0, 1):
            total.narrow(dim, offset, R - 1).add_(kl)
            count.narrow(dim, offset, R - 1).add_(1)
    return (total / count.clamp_min(1)).flatten()


def token_labels(labels: Tensor, R: int) -> Tensor:
    """(H, W) pixel labels -> (R*R,) the label at each token's centre pixel (nearest)."""
    H, W = labels.shape
    rows = ((torch.arange(R) + 0.5) * H / R).long()
    cols = ((torch.arange(R) + 0.5) * W / R).long()
    return labels[rows][:, cols].flatten()


def statistics(maps: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
    """(T, N, N) maps and (T, H, W) static labels per t -> {name: (T, N)} per-token statistics (STATISTICS).

    entropy / log N; change: symmetric KL of the row to its row at the next t (0 at the last); disagreement with
    the neighbours; log_area: log of the token's segment's share of the grid (0 when labels is None).
    """
    T, N, _ = maps.shape
    R = diffseg._side(N, "maps")
    logs = maps.clamp_min(LOG_FLOOR).log()
    change = torch.zeros(T, N, dtype=maps.dtype)
    change[:-1] = diffseg.symmetric_kl(maps[:-1], maps[1:], logs[:-1], logs[1:], paired=True)
    log_area = torch.zeros(T, N, dtype=maps.dtype)
    if labels is not None:
        for k in range(T):
            tok = token_labels(labels[k], R)
            counts = torch.bincount(tok)
            log_area[k] = (counts[tok].to(maps.dtype) / N).log()
    return {"entropy": entropy(maps) / math.log(N), "change": change,
            "disagreement": torch.stack([disagreement(m) for m in maps]), "log_area": log_area}


def _unit_range(x: Tensor) -> Tensor:
    """(T, N) -> each column scaled to [0, 1] over T (constant columns -> 0)."""
    lo, hi = x.amin(0), x.amax(0)
    return (x - lo) / (hi - lo).clamp_min(LOG_FLOOR)


def _first(condition: Tensor) -> Tensor:
    """(T, N) bool -> (N,) long: the first index where true, the last index where never."""
    T = condition.shape[0]
    idx = torch.arange(T).view(-1, 1).expand_as(condition)
    return torch.where(condition, idx, T - 1).amin(0)


def choose(stats: Mapping[str, Tensor], criterion: str, knob: float) -> Tensor:
    """Per-token statistics {name: (T, N)} -> (N,) long t map by one criterion (CRITERIA) and its knob."""
    if criterion not in CRITERIA:
        raise ZsnbError(f"criterion={criterion!r}; use one of {list(CRITERIA)}.")
    if not (isinstance(knob, int | float) and math.isfinite(knob)):
        raise ZsnbError(f"knob={knob!r} must be a finite number.")
    T = stats["entropy"].shape[0]
    rank = torch.linspace(0, 1, T, dtype=stats["entropy"].dtype).view(-1, 1)
    if criterion in ("entropy", "agreement"):
        score = _unit_range(stats["entropy" if criterion == "entropy" else "disagreement"])
        return (score - knob * rank).argmin(0)
    if criterion == "stability":
        return _first(stats["change"] < knob)
    return _first(stats["log_area"] - stats["log_area"][:1] >= math.log(max(knob, LOG_FLOOR)))


def mix_rows(maps: Tensor, choice: Tensor) -> Tensor:
    """(T, N, N) maps, (N,) t map -> (N, N): row i from the map at t_i."""
    return maps[choice, torch.arange(maps.shape[1])]


def upsample(choice: Tensor, hw: tuple[int, int]) -> Tensor:
    """(R*R,) t map -> (H, W) nearest-upsampled."""
    R = diffseg._side(choice.shape[0], "choice")
    return F.interpolate(choice.view(1, 1, R, R).float(), size=hw, mode="nearest")[0, 0].long()


def smooth(choice: Tensor, passes: int = 1) -> Tensor:
    """(R*R,) t map -> (R*R,) after `passes` 3 x 3 mode filters (ties to the smaller t)."""
    R = diffseg._side(choice.shape[0], "choice")
    n = int(choice.max()) + 1
    x = choice.view(R, R)
    for _ in range(passes):
        votes = F.one_hot(x, n).permute(2, 0, 1)[None].double()  # (1, n, R, R)
        votes = F.avg_pool2d(votes, 3, stride=1, padding=1, count_include_pad=False)[0]
        x = votes.argmax(0)
    return x.flatten()


def cosines(maps: Tensor) -> Tensor:
    """(T, N, N) row-stochastic maps -> (T, N, N) float64 cos(√row_i, √row_j) (the Bhattacharyya coefficient)."""
    unit = F.normalize(maps.clamp_min(0).sqrt(), dim=-1)
    return (unit @ unit.transpose(1, 2)).double()


def ncut_pairwise(maps: Tensor, choice: Tensor, out_size: int | tuple[int, int], tau: float = 0.5,
                  alpha: float = 10.0, cos: Tensor | None = None) -> Tensor:
    """(T, N, N) maps, (N,) t map -> (H, W) = out_size labels: NCut on cos(√row_i, √row_j) at max(t_i, t_j).

    cos: `cosines(maps)` when already computed. With a constant t map this is `hierarchy.group_ncut` of that
    t's map (concepts from the rows at t_i).
    """
    R = diffseg._side(maps.shape[1], "maps")
    cos = cosines(maps) if cos is None else cos
    pair = torch.maximum(choice[:, None], choice[None, :])  # (N, N) the coarser timestep of each pair
    cos = cos.gather(0, pair[None])[0]
    roots = maps.clamp_min(0).sqrt()
    leaves = diffcut.ncut_tree(diffcut.cosine_affinity(cos, alpha), lambda _parent: tau)[0]
    feats = mix_rows(roots, choice).reshape(R, R, -1)
    return diffcut.label_pixels(leaves.reshape(R, R), feats, None, out_size, refine=False)


def region_select(labels: Tensor, choice: Tensor) -> Tensor:
    """(T, H, W) static labels per t, (H, W) t map -> (H, W) long labels 0..k-1 by a tree cut across t.

    The root is the segmentation at the largest t; a region moves down to its intersections with the next
    smaller t's segments while the lower median of its t map is smaller than its current t.
    """
    if labels.shape[1:] != choice.shape:
        raise ZsnbError(f"labels {tuple(labels.shape)} and t map {tuple(choice.shape)} must share (H, W).")
    out = torch.empty(choice.shape, dtype=torch.long)
    top = labels.shape[0] - 1
    todo = [(labels[top] == v, top) for v in labels[top].unique().tolist()]
    n = 0
    while todo:
        mask, k = todo.pop()
        if k == 0 or int(choice[mask].median()) >= k:
            out[mask] = n
            n += 1
            continue
        todo += [(mask & (labels[k - 1] == v), k - 1) for v in labels[k - 1][mask].unique().tolist()]
    return out


def features(stats: Mapping[str, Tensor]) -> Tensor:
    """{name: (T, N)} -> (N, 2 * len(STATISTICS) * T) inputs of the learned selector (raw and scaled over t)."""
    cols = [stats[name].T for name in STATISTICS] + [_unit_range(stats[name]).T for name in STATISTICS]
    return torch.cat(cols, dim=1).float()


@dataclass(frozen=True)
class Selector:
    """Multinomial logistic regression from per-token `features` to a t index."""

    mean: Tensor  # (F,)
    std: Tensor  # (F,)
    weight: Tensor  # (F, T)
    bias: Tensor  # (T,)

    def predict(self, x: Tensor) -> Tensor:
        """(N, F) features -> (N,) long t map."""
        return (((x - self.mean) / self.std) @ self.weight + self.bias).argmax(1)


def fit_selector(x: Tensor, y: Tensor, n_classes: int, l2: float = 1e-3, steps: int = 200) -> Selector:
    """(M, F) features, (M,) long labels -> Selector fitted by L-BFGS on cross-entropy + l2 * |weight|²."""
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / std
    weight = torch.zeros(x.shape[1], n_classes, requires_grad=True)
    bias = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def loss() -> Tensor:
        opt.zero_grad()
        value = F.cross_entropy(z @ weight + bias, y) + l2 * weight.square().sum()
        value.backward()
        return value

    opt.step(loss)
    return Selector(mean, std, weight.detach(), bias.detach())
