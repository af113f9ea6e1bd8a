"""Unsupervised-segmentation metrics: Hungarian-matched mIoU and pixel accuracy, plus instance-level scores.

Protocol (docs/reference.md#matching-and-metrics). DiffSeg (`diffseg/utils.py`, credited to PiCIE's `_fast_hist`)
matches **per image**: the confusion histogram is n_class x max(n_class, #predicted ids), GT outside [0, n_class) is
ignored, one `linear_sum_assignment(hist, maximize=True)` per image, TP/FP/FN per class summed over images; mIoU =
nanmean_c TP/(TP+FP+FN), pixel accuracy = sum TP / #labelled pixels. DiffCut (`tools/utils.py`, `eval_diffcut.py`)
reuses that function and adds a **many-to-one background** step for VOC, Pascal Context and COCO-Object
(`match_image_background`). `DatasetHungarianAccumulator` is the IIC/PiCIE/STEGO dataset-level protocol, and
`segment_miou`/`segment_scores` score the synthetic world's instance maps.

Label maps are (H, W) integer numpy arrays or torch tensors; predicted ids may be any integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from zsnb.errors import ZsnbError

PAD_ID: int = int(np.iinfo(np.int64).min)  # ImageMatch.col_ids entry of an empty padding column


def as_label_map(x: Any, name: str) -> np.ndarray:
    """Numpy/torch (H, W) integer (or bool) label map -> (H, W) int64 numpy array; else ZsnbError."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
        raise ZsnbError(f"{name} has dtype {x.dtype}; label maps must hold integer ids: take the argmax or "
                         f"cast with .astype(np.int64) / .long() first")
    if x.ndim != 2:
        raise ZsnbError(f"{name} has shape {x.shape}; pass one (H, W) label map at a time")
    return x.astype(np.int64)


def _pair(pred: Any, gt: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert a (pred, gt) pair of (H, W) label maps."""
    p, g = as_label_map(pred, "pred"), as_label_map(gt, "gt")
    if p.shape != g.shape:
        raise ZsnbError(f"pred has shape {p.shape} but gt has shape {g.shape}; resize pred to the label "
                         f"resolution (nearest) before scoring")
    return p, g


def _check_gt(gt: np.ndarray, n_class: int, ignore_index: int | None) -> None:
    """Raise if gt holds a value outside [0, n_class) other than ignore_index (None: ignore silently)."""
    if ignore_index is None:
        return  # the official behaviour: anything outside [0, n_class) is silently unlabelled
    bad = np.setdiff1d(gt[(gt < 0) | (gt >= n_class)], [ignore_index])
    if bad.size:
        raise ZsnbError(f"gt holds labels {bad[:5].tolist()} outside [0, {n_class}) that are not "
                         f"ignore_index={ignore_index}; map them to ignore_index or pass ignore_index=None")


def remap_ids(pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) arbitrary ids -> ((H, W) dense ids 0..k-1 in sorted order, (k,) original id of each)."""
    ids, dense = np.unique(pred, return_inverse=True)
    return dense.reshape(pred.shape), ids


def confusion(gt: np.ndarray, pred: np.ndarray, n_class: int) -> np.ndarray:
    """(H, W) gt, (H, W) ids >= 0 -> (n_class, max(n_class, pred.max()+1)) int64 counts, gt rows."""
    n_cols = max(n_class, int(pred.max()) + 1 if pred.size else 0)
    mask = (gt >= 0) & (gt < n_class)  # unlabelled pixels (e.g. 255) take no part in matching or scores
    flat = gt[mask] * n_cols + pred[mask]
    return np.bincount(flat, minlength=n_class * n_cols).reshape(n_class, n_cols)


def assign(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(C, P >= C) counts -> (C,) matched column per class and (C,) tp, fp, fn, as the official code."""
    rows, cols = linear_sum_assignment(hist, maximize=True)  # rows == arange(C) since P >= C
    tp = hist[rows, cols]
    fn = hist.sum(axis=1) - tp
    # A class absent from the image still receives a column (the rectangular-hist quirk): that column's
    # pixels become FP of the absent class. Unassigned columns count only as FN of their GT classes.
    fp = hist.sum(axis=0)[cols] - tp
    return cols, tp, fp, fn


@dataclass(frozen=True)
class ImageMatch:
    """One image's matching: col_ind (C,) column per class, col_ids (P,) pred id per column (PAD_ID =
    empty padding), tp/fp/fn (C,) int64, n_labelled = #pixels with gt in [0, C)."""

    col_ind: np.ndarray
    col_ids: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    n_labelled: int

    @property
    def assignment(self) -> dict[int, int | None]:
        """Class -> matched predicted id (None when matched to an empty padding column)."""
        ids = [int(self.col_ids[j]) for j in self.col_ind]
        return {c: (None if i == PAD_ID else i) for c, i in enumerate(ids)}


def _match_dense(dense: np.ndarray, col_ids: np.ndarray, gt: np.ndarray, n_class: int) -> ImageMatch:
    """Match dense (H, W) ids whose column j stands for pred id col_ids[j]."""
    hist = confusion(gt, dense, n_class)
    col_ids = np.concatenate([col_ids, np.full(hist.shape[1] - len(col_ids), PAD_ID)])
    cols, tp, fp, fn = assign(hist)
    return ImageMatch(cols, col_ids, tp, fp, fn, int(hist.sum()))


def match_image(pred: Any, gt: Any, n_class: int, *, ignore_index: int | None = 255) -> ImageMatch:
    """Per-image Hungarian (DiffSeg/PiCIE) of (H, W) pred ids against (H, W) gt classes in [0, n_class)."""
    p, g = _pair(pred, gt)
    _check_gt(g, n_class, ignore_index)
    dense, ids = remap_ids(p)
    return _match_dense(dense, ids, g, n_class)


def match_image_background(pred: Any, gt: Any, n_class: int, background: int, *,
                           ignore_index: int | None = 255) -> tuple[ImageMatch, np.ndarray]:
    """DiffCut's many-to-one background matching -> (ImageMatch, (H, W) merged pred in original ids).

    As in `eval_diffcut.py`: (1) Hungarian over the n_class-1 foreground classes only (background pixels
    excluded). (2) A foreground class counts as "assigned" when its row of the column-reordered histogram
    `hist[:, col_ind]` is non-zero, i.e. it overlaps *any* matched column (the official test, not "overlaps
    its own column"; the two differ only under assignment ties); the matched columns of assigned classes
    are kept. (3) Every other predicted cluster is merged into one segment with id max(pred)+1. (4) Hungarian
    over all n_class classes on the merged map, whose ids keep their holes (as the official code without
    PAMR; PAMR would re-densify them). Internally the background is moved to the last class index, as in
    DiffCut's datasets (background = -1 -> N_CLASS-1), so assignment ties break the same way.
    """
    p, g = _pair(pred, gt)
    _check_gt(g, n_class, ignore_index)
    if not 0 <= background < n_class:
        raise ZsnbError(f"background={background} must be a class index in [0, {n_class})")
    order = np.array([c for c in range(n_class) if c != background] + [background])  # new index -> class
    lut = np.argsort(order)  # class -> new index
    labelled = (g >= 0) & (g < n_class)
    g_new = np.where(labelled, lut[np.clip(g, 0, n_class - 1)], -1)
    dense, ids = remap_ids(p)
    k = len(ids)
    # Stage 1: background pixels (new index n_class-1) fall outside [0, n_class-1) and are excluded.
    hist = confusion(g_new, dense, n_class - 1)
    kept = np.zeros(k, dtype=bool)
    if n_class > 1:
        cols, *_ = assign(hist)
        assigned = hist[:, cols].max(axis=1) > 0
        kept_cols = cols[assigned]
        kept[kept_cols[kept_cols < k]] = True  # padding columns hold no cluster
    merged = np.where(kept[dense], dense, k)  # (H, W); id k = the merged background segment
    m = _match_dense(merged, np.append(ids, ids.max() + 1 if k else 0), g_new, n_class)
    col_ind, tp, fp, fn = (np.empty_like(a) for a in (m.col_ind, m.tp, m.fp, m.fn))
    col_ind[order], tp[order], fp[order], fn[order] = m.col_ind, m.tp, m.fp, m.fn  # back to class order
    merged_ids = np.where(kept[dense], p, ids.max() + 1 if k else 0)
    return ImageMatch(col_ind, m.col_ids, tp, fp, fn, m.n_labelled), merged_ids


@dataclass(frozen=True)
class Scores:
    """Dataset scores: miou, acc floats; iou (C,) float with NaN for never-seen classes; tp/fp/fn (C,)."""

    miou: float
    acc: float
    iou: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    n_labelled: int
    col_ind: np.ndarray | None = None  # dataset-level mode only: the one column per class


def scores(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, n_labelled: int,
           col_ind: np.ndarray | None = None) -> Scores:
    """(C,) tp, fp, fn counts -> Scores; a class with TP+FP+FN = 0 gets IoU NaN and leaves the nanmean."""
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / (tp + fp + fn)
    miou = float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
    acc = float(tp.sum() / n_labelled) if n_labelled else float("nan")
    return Scores(miou, acc, iou, tp.copy(), fp.copy(), fn.copy(), n_labelled, col_ind)


@dataclass
class HungarianAccumulator:
    """Per-image Hungarian over a dataset; background=None: DiffSeg, background=b: DiffCut many-to-one."""

    n_class: int
    ignore_index: int | None = 255
    background: int | None = None
    tp: np.ndarray = field(init=False)
    fp: np.ndarray = field(init=False)
    fn: np.ndarray = field(init=False)
    n_labelled: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.tp, self.fp, self.fn = (np.zeros(self.n_class, dtype=np.int64) for _ in range(3))

    def update(self, pred: Any, gt: Any) -> ImageMatch:
        """Match one (H, W) pred against its (H, W) gt and add its counts; returns the image's match."""
        if self.background is None:
            m = match_image(pred, gt, self.n_class, ignore_index=self.ignore_index)
        else:
            m, _ = match_image_background(pred, gt, self.n_class, self.background,
                                          ignore_index=self.ignore_index)
        self.tp += m.tp
        self.fp += m.fp
        self.fn += m.fn
        self.n_labelled += m.n_labelled
        return m

    def result(self) -> Scores:
        """Scores of everything seen so far."""
        return scores(self.tp, self.fp, self.fn, self.n_labelled)


@dataclass
class DatasetHungarianAccumulator:
    """Dataset-level matching (IIC/PiCIE/STEGO): one global (n_class, P) confusion, one assignment.

    Predicted ids must be non-negative cluster ids that mean the same thing in every image. Per-image and
    dataset-level numbers are not comparable: per-image matching lets every image pick its own
    cluster->class permutation with the GT in hand (an oracle that never lowers accuracy and almost always
    raises mIoU), while the dataset-level protocol must commit to one mapping for all images.
    """

    n_class: int
    ignore_index: int | None = 255
    hist: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.hist = np.zeros((self.n_class, self.n_class), dtype=np.int64)

    def update(self, pred: Any, gt: Any) -> None:
        """Add one (H, W) pred of global cluster ids >= 0 and its (H, W) gt to the global confusion."""
        p, g = _pair(pred, gt)
        _check_gt(g, self.n_class, self.ignore_index)
        if p.size and p.min() < 0:
            raise ZsnbError("pred holds negative ids; dataset-level matching needs global cluster ids >= 0")
        h = confusion(g, p, self.n_class)
        if h.shape[1] > self.hist.shape[1]:  # a new cluster id: widen the global histogram
            self.hist = np.pad(self.hist, ((0, 0), (0, h.shape[1] - self.hist.shape[1])))
        self.hist[:, : h.shape[1]] += h

    def result(self) -> Scores:
        """One Hungarian assignment on the global confusion -> Scores with col_ind = cluster id per class."""
        cols, tp, fp, fn = assign(self.hist)
        return scores(tp, fp, fn, int(self.hist.sum()), cols)


def _segment_hist(pred: Any, gt: Any) -> tuple[np.ndarray, int]:
    """(H, W) pred, (H, W) instance ids -> ((G, max(G, K)) counts with every GT id its own row, K)."""
    p, g = _pair(pred, gt)
    g_dense, g_ids = remap_ids(g)
    p_dense, p_ids = remap_ids(p)
    return confusion(g_dense, p_dense, len(g_ids)), len(p_ids)


def _ari(table: np.ndarray) -> float:
    """(R, S) contingency counts -> ARI; float64 because pair counts overflow int64 at ~10^5 pixels."""
    t = table.astype(np.float64)

    def pairs(x: np.ndarray) -> np.ndarray:
        return x * (x - 1) / 2

    index, a, b = pairs(t).sum(), pairs(t.sum(1)).sum(), pairs(t.sum(0)).sum()
    total = pairs(t.sum())
    expected = a * b / total if total else 0.0
    denom = (a + b) / 2 - expected
    # denom == 0 only when both partitions are the same trivial one (all one segment / all singletons)
    return float((index - expected) / denom) if denom else 1.0


def adjusted_rand_index(pred: Any, gt: Any) -> float:
    """Adjusted Rand index of two (H, W) partitions (Hubert & Arabie), from their contingency table."""
    return _ari(_segment_hist(pred, gt)[0])  # zero padding columns add no pairs


def segment_scores(pred: Any, gt: Any) -> dict[str, float]:
    """(H, W) pred ids vs (H, W) instance ids (every id a segment, 0 included) -> miou, acc, ari, n_pred."""
    hist, n_pred = _segment_hist(pred, gt)
    if not hist.size:
        return {"miou": float("nan"), "acc": float("nan"), "ari": float("nan"), "n_pred": 0.0}
    _, tp, fp, fn = assign(hist)  # every row is present in this image, so no IoU is 0/0
    return {
        "miou": float(np.mean(tp / (tp + fp + fn))),
        "acc": float(tp.sum() / hist.sum()),
        "ari": _ari(hist),
        "n_pred": float(n_pred),
    }


def segment_ious(pred: Any, gt: Any) -> np.ndarray:
    """(H, W) pred ids vs (H, W) instance ids -> (K,) Hungarian-matched IoU of each GT id, in sorted id order."""
    hist, _ = _segment_hist(pred, gt)
    if not hist.size:
        return np.zeros(0)
    _, tp, fp, fn = assign(hist)
    return tp / (tp + fp + fn)


def segment_miou(pred: Any, gt: Any) -> float:
    """Instance-level per-image mIoU: mean over this image's GT ids of the Hungarian-matched IoU."""
    ious = segment_ious(pred, gt)
    return float(ious.mean()) if ious.size else float("nan")
