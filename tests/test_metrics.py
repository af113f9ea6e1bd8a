"""Hand-made cases with known answers for zsnb.metrics (per-image Hungarian, DiffCut background, ARI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zsnb.metrics import (
    DatasetHungarianAccumulator,
    HungarianAccumulator,
    adjusted_rand_index,
    match_image,
    match_image_background,
    segment_ious,
    segment_miou,
    segment_scores,
)

# Worked example: 2 classes, 3 predicted ids (non-contiguous: 5, 7, 9), 12 pixels.
GT = np.array([[0, 0, 0, 0],
               [0, 0, 1, 1],
               [1, 1, 1, 1]])
PRED = np.array([[5, 5, 5, 9],
                 [5, 7, 7, 7],
                 [7, 7, 9, 9]])
# hist (rows gt, columns pred 5, 7, 9):  class 0: [4, 1, 1]   class 1: [0, 4, 2]
# best assignment 0->5, 1->7 (total 8; the next best, 0->5 1->9, gives 6); pred 9 stays unassigned.
# TP = [4, 4]; FN = row sums - TP = [6-4, 6-4] = [2, 2]; FP = column sums of 5, 7 - TP = [4-4, 5-4] = [0, 1]
# IoU = [4/6, 4/7]; mIoU = (2/3 + 4/7) / 2 = 13/21; acc = 8/12 (the 3 pixels of pred 9 count only as FN).


def test_perfect_prediction_with_permuted_ids() -> None:
    gt = np.array([[0, 0, 1], [2, 2, 1], [2, 0, 1]])
    pred = torch.tensor([[42, 42, 3], [-1, -1, 3], [-1, 42, 3]])  # tensors and arbitrary ids are fine
    acc = HungarianAccumulator(n_class=3)
    m = acc.update(pred, gt)
    assert m.assignment == {0: 42, 1: 3, 2: -1}
    r = acc.result()
    assert r.miou == 1.0 and r.acc == 1.0
    assert segment_miou(pred, gt) == 1.0


def test_worked_example() -> None:
    m = match_image(PRED, GT, n_class=2)
    assert m.assignment == {0: 5, 1: 7}
    np.testing.assert_array_equal(m.tp, [4, 4])
    np.testing.assert_array_equal(m.fp, [0, 1])
    np.testing.assert_array_equal(m.fn, [2, 2])
    acc = HungarianAccumulator(n_class=2)
    acc.update(PRED, GT)
    r = acc.result()
    np.testing.assert_allclose(r.iou, [4 / 6, 4 / 7])
    assert r.miou == pytest.approx(13 / 21) and r.acc == pytest.approx(8 / 12)


def test_ignore_label_is_excluded() -> None:
    gt = np.concatenate([GT, np.full((3, 2), 255)], axis=1)  # two extra columns of void pixels
    pred = np.concatenate([PRED, np.array([[9, 5], [7, 5], [9, 9]])], axis=1)
    m = match_image(pred, gt, n_class=2)
    np.testing.assert_array_equal([m.tp, m.fp, m.fn], [[4, 4], [0, 1], [2, 2]])
    assert m.n_labelled == 12


def test_class_absent_everywhere_is_nan_and_left_out() -> None:
    # 3 classes, class 2 never appears and only 2 predicted ids: class 2 gets the empty padding column.
    pred = np.where(GT == 0, 5, 7)
    acc = HungarianAccumulator(n_class=3)
    acc.update(pred, GT)
    r = acc.result()
    assert np.isnan(r.iou[2]) and r.iou[0] == 1.0 and r.iou[1] == 1.0
    assert r.miou == 1.0


def test_rectangular_hist_quirk_absent_class_gets_fp() -> None:
    # gt is all class 0; pred has 2 ids. hist = [[3, 1], [0, 0]]: 0->id 0 (TP 3, FN 1), and the absent
    # class 1 is still assigned id 1, so that pixel is an FP of class 1: IoU = [3/4, 0/1], mIoU 0.375.
    gt = np.zeros((2, 2), dtype=np.int64)
    pred = np.array([[0, 0], [0, 1]])
    acc = HungarianAccumulator(n_class=2)
    acc.update(pred, gt)
    r = acc.result()
    np.testing.assert_array_equal(r.fp, [0, 1])
    np.testing.assert_allclose(r.iou, [0.75, 0.0])
    assert r.miou == 0.375 and r.acc == 0.75


def test_many_to_one_background_merges_unmatched_clusters() -> None:
    # VOC-style: class 0 = background, class 1 = the top-left object, class 2 absent.
    gt = np.array([[1, 1, 0, 0],
                   [1, 1, 0, 0],
                   [0, 0, 0, 0],
                   [0, 0, 0, 0]])
    # The object is cluster 10; the background is over-segmented into 20 (6 px), 30 (4 px) and 40 (2 px).
    pred = np.array([[10, 10, 20, 20],
                     [10, 10, 20, 20],
                     [30, 30, 20, 20],
                     [30, 30, 40, 40]])
    # Plain per-image: background matches only 20 (IoU 6/12), the object 10 (IoU 1), and the absent class 2
    # takes 30 or 40 (IoU 0 either way) -> mIoU 0.5.
    plain = HungarianAccumulator(n_class=3)
    plain.update(pred, gt)
    np.testing.assert_allclose(plain.result().iou, [0.5, 1.0, 0.0])
    # DiffCut: foreground-only matching keeps 10 (class 2 overlaps nothing, so its cluster is not kept);
    # 20, 30, 40 merge into one segment with id max+1 = 41, which then matches the background exactly.
    m, merged = match_image_background(pred, gt, n_class=3, background=0)
    np.testing.assert_array_equal(merged, np.where(pred == 10, 10, 41))
    assert m.assignment[0] == 41 and m.assignment[1] == 10
    bg = HungarianAccumulator(n_class=3, background=0)
    bg.update(pred, gt)
    r = bg.result()
    assert r.iou[0] == 1.0 and r.iou[1] == 1.0 and np.isnan(r.iou[2])
    assert r.miou == 1.0 and r.acc == 1.0


def test_dataset_level_differs_from_per_image() -> None:
    # Same GT twice; the clusters swap their meaning in image 2. Per image: both perfect. Dataset level:
    # global hist = [[2, 2], [2, 2]], so any one mapping gets TP 2, FP 2, FN 2 per class: IoU 1/3, acc 1/2.
    gt = np.array([[0, 0], [1, 1]])
    preds = [np.array([[0, 0], [1, 1]]), np.array([[1, 1], [0, 0]])]
    per_image, dataset = HungarianAccumulator(n_class=2), DatasetHungarianAccumulator(n_class=2)
    for p in preds:
        per_image.update(p, gt)
        dataset.update(p, gt)
    assert per_image.result().miou == 1.0 and per_image.result().acc == 1.0
    r = dataset.result()
    assert r.miou == pytest.approx(1 / 3) and r.acc == 0.5 and r.col_ind is not None


def test_ari() -> None:
    assert adjusted_rand_index(PRED, PRED + 100) == 1.0  # identical partitions, renamed ids
    # gt [0 0 1 1] vs pred [0 0 1 2]: contingency [[2,0,0],[0,1,1]]; sum C(n_ij,2) = 1, rows a = 2,
    # columns b = 1, C(4,2) = 6: expected = a*b/6 = 1/3, max = (a+b)/2 = 3/2 -> (1-1/3)/(3/2-1/3) = 4/7.
    assert adjusted_rand_index(np.array([[0, 0], [1, 2]]), np.array([[0, 0], [1, 1]])) == pytest.approx(4 / 7)


def test_segment_scores() -> None:
    # gt [[0,0],[1,1]] vs pred [[0,0],[0,1]]: hist [[2,0],[1,1]] -> 0->0, 1->1, TP [2,1], FP [1,0], FN [0,1].
    # IoU [2/3, 1/2] -> 7/12; acc 3/4; ARI: index 1, a 2, b 3, expected 2*3/6 = 1 -> (1-1)/(2.5-1) = 0.
    s = segment_scores(np.array([[0, 0], [0, 1]]), np.array([[0, 0], [1, 1]]))
    assert s == pytest.approx({"miou": 7 / 12, "acc": 0.75, "ari": 0.0, "n_pred": 2.0})


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="pred has shape"):
        match_image(np.zeros((2, 3), dtype=int), np.zeros((2, 2), dtype=int), 2)
    with pytest.raises(ValueError, match="pred has dtype float"):
        segment_miou(np.zeros((2, 2)), np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="gt has shape"):
        segment_miou(np.zeros((2, 2), dtype=int), np.zeros((1, 2, 2), dtype=int))
    with pytest.raises(ValueError, match="ignore_index"):
        match_image(np.zeros((2, 2), dtype=int), np.full((2, 2), 7), 2)


def test_segment_ious_are_per_gt_id_and_average_to_segment_miou():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    pred = np.array([[5, 5, 5, 7], [5, 5, 5, 7]])
    ious = segment_ious(pred, gt)
    assert np.allclose(ious, [4 / 6, 2 / 4])
    assert segment_miou(pred, gt) == pytest.approx(ious.mean())
