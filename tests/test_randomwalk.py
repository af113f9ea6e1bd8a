"""Tests for zsnb.randomwalk: the random-walk NCut identity, block recovery with the automatic threshold,
the power, input validation, and a check on the organism's attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zsnb import ZsnbError, randomwalk

pytestmark = pytest.mark.usefixtures("one_thread")


def block_walk(sizes: tuple[int, ...], leak: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, N) non-reversible row-stochastic P that leaves its block with probability `leak`, and block labels."""
    g = torch.Generator().manual_seed(seed)
    truth = torch.cat([torch.full((s,), i) for i, s in enumerate(sizes)])
    same = truth[:, None] == truth[None, :]
    raw = torch.rand(len(truth), len(truth), generator=g, dtype=torch.float64) + 0.5  # random, not symmetric
    inside = torch.where(same, raw, 0.0)
    outside = torch.where(same, 0.0, raw)
    p = (1 - leak) * inside / inside.sum(1, keepdim=True) + leak * outside / outside.sum(1, keepdim=True)
    return p, truth


def same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when two label vectors define the same partition (labels may be permuted)."""
    pairs = torch.stack([a, b], 1).unique(dim=0)
    return len(pairs) == len(a.unique()) == len(b.unique())


@pytest.mark.parametrize("sizes", [(40, 40), (30, 50, 20, 44), (12, 12, 12, 12, 16)])
def test_automatic_threshold_recovers_blocks(sizes):
    p, truth = block_walk(sizes, leak=0.05)
    w = randomwalk.flow_graph(p, randomwalk.stationary(p))
    labels, nodes = randomwalk.recursive_cut(w)
    assert same_partition(labels, truth), nodes
    assert {n.stop for n in nodes if n.label is not None} <= {"ncut >= tau", "min_size"}


def test_automatic_threshold_recovers_blocks_through_power():
    p, truth = block_walk((30, 50, 20, 44), leak=0.05, seed=1)
    for k in (2, 4):
        w = randomwalk.flow_graph(randomwalk.power(p, k), randomwalk.stationary(p))
        assert same_partition(randomwalk.recursive_cut(w)[0], truth)


def test_flow_graph_ncut_is_the_walk_leaving_each_side():
    p, _ = block_walk((20, 30, 14), leak=0.2, seed=3)
    pi = randomwalk.stationary(p)
    assert torch.allclose(pi @ p, pi, atol=1e-12) and abs(pi.sum().item() - 1) < 1e-12
    w = randomwalk.flow_graph(p, pi)
    assert torch.allclose(w, w.T) and torch.allclose(w.sum(1), pi, atol=1e-12)
    a = torch.rand(len(p), generator=torch.Generator().manual_seed(1)) < 0.4
    cut = w[a][:, ~a].sum()
    ncut = cut / w[a].sum() + cut / w[~a].sum()
    leave_a = (pi[a, None] * p[a][:, ~a]).sum() / pi[a].sum()  # P(step A -> B | start in A, stationary)
    leave_b = (pi[~a, None] * p[~a][:, a]).sum() / pi[~a].sum()
    assert torch.allclose(ncut, leave_a + leave_b, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 7, 8, 13])
def test_power_equals_repeated_products_and_stays_stochastic(k):
    p, _ = block_walk((10, 15, 11), leak=0.3)
    dense = p.clone()
    for _ in range(k - 1):
        dense = dense @ p
    pk = randomwalk.power(p, k)
    assert torch.allclose(pk, dense, atol=1e-12)
    assert torch.allclose(pk.sum(1), torch.ones(len(p), dtype=p.dtype), atol=1e-12) and pk.min() >= 0


def test_adjacency_is_cosine_of_rows():
    p, _ = block_walk((8, 8), leak=0.1)
    a = randomwalk.adjacency(p)
    i, j = 2, 11
    assert torch.isclose(a[i, j], torch.dot(p[i], p[j]) / (p[i].norm() * p[j].norm()))
    assert torch.allclose(a.diagonal(), torch.ones(16, dtype=a.dtype))


def test_transition_matrix_accepts_numpy_maps_and_aggregated():
    p, _ = block_walk((8, 8), leak=0.1)
    from_numpy = randomwalk.transition_matrix(p.numpy())
    assert torch.allclose(from_numpy, p)
    assert torch.allclose(randomwalk.transition_matrix(p.reshape(4, 4, 4, 4)), p)
    from_float32 = randomwalk.transition_matrix({"layer": p.float()})
    assert from_float32.dtype == torch.float32 and torch.allclose(from_float32.double(), p, atol=1e-6)
    assert randomwalk.transition_matrix(p).dtype == torch.float64  # float64 attention stays float64


def test_recursion_is_diffcuts_with_a_constant_threshold():
    """A float threshold runs DiffCut's recursion unchanged: same partition and tree as diffcut.ncut_tree."""
    from zsnb import diffcut

    p, _ = block_walk((20, 30, 14), leak=0.15, seed=2)
    w = randomwalk.flow_graph(p, randomwalk.stationary(p))
    labels, nodes = randomwalk.recursive_cut(w, threshold=0.6)
    ref_labels, ref_nodes = diffcut.ncut_tree(w, lambda _parent: 0.6)
    assert torch.equal(labels, ref_labels) and [n.stop for n in nodes] == [n.stop for n in ref_nodes]


@pytest.mark.parametrize("bad, match", [
    (torch.rand(16, 16), "rows must sum to 1"),
    (-torch.eye(16), "negative"),
    (torch.full((16, 16), float("nan")), "NaN"),
    (torch.eye(15), "shape"),
    ([[1.0]], "tensor or numpy"),
])
def test_transition_matrix_rejects(bad, match):
    with pytest.raises(ZsnbError, match=match):
        randomwalk.transition_matrix(bad)


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_power_rejects_bad_k(k):
    with pytest.raises(ZsnbError, match="k="):
        randomwalk.power(torch.eye(4), k)


def test_reducible_walk_and_bad_arguments_are_named():
    with pytest.raises(ZsnbError, match="reducible"):
        randomwalk.stationary(torch.eye(16, dtype=torch.float64))
    p, _ = block_walk((8, 8), leak=0.1)
    with pytest.raises(ZsnbError, match="graph="):
        randomwalk.segment(p, graph="knn")
    with pytest.raises(ZsnbError, match="threshold="):
        randomwalk.segment(p, threshold=-1.0)


def test_segment_labels_are_compact_and_sized():
    p, _ = block_walk((32, 32), leak=0.02)  # N = 64: an 8 x 8 token grid
    labels = randomwalk.segment(p, k=2, out_size=24)
    assert labels.shape == (24, 24) and labels.dtype == torch.long
    assert labels.unique().tolist() == [0, 1]


def test_organism_gives_a_sensible_number_of_segments():
    from zsnb import capture, load_backbone, registry, world

    bb = load_backbone("organism")
    scenes = [world.scene(s) for s in world.TRAIN_SEEDS[:4]]
    images = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2)
    params = registry.params("randomwalk", bb).record
    cap = capture(bb, images, timesteps=params.timesteps, attention="self")
    for i, s in enumerate(scenes):
        labels = registry.segment_capture("randomwalk", cap, i, params, s.objects.shape)
        assert labels.shape == s.objects.shape
        n_true = len(np.unique(s.objects))
        assert 2 <= len(labels.unique()) <= 3 * n_true, (s.seed, len(labels.unique()), n_true)
