"""Tests for zsnb.hierarchy: fusion rules, grouping, the adaptive chain, bad arguments."""

from __future__ import annotations

import pytest
import torch

from zsnb import hierarchy, timemap, world, worldeval

R = 4  # tiny synthetic grids: 16 pixels
TAP = "down_last_attn1"


pytestmark = pytest.mark.usefixtures("one_thread")


def random_maps(seed: int, n: int = R * R, sharpness: float = 3.0) -> torch.Tensor:
    """(n, n) row-stochastic softmax of seeded random logits."""
    g = torch.Generator().manual_seed(seed)
    return (sharpness * torch.randn(n, n, generator=g)).softmax(1)


@pytest.fixture(scope="module")
def capture():
    """A two-timestep capture of two evaluation scenes through the untrained organism (self-attention + tap)."""
    import zsnb

    backbone = zsnb.load_backbone("organism", weights="random")
    scenes = [world.scene(s) for s in world.EVAL_SEEDS[:2]]
    return zsnb.capture(backbone, worldeval.scene_tensor(scenes), (50, 300), attention="self", features=(TAP,))


def test_feature_kernel_shape_and_rows():
    feats = torch.randn(2, 2, 5)
    k = hierarchy.feature_kernel(feats, R, temperature=0.5)
    assert k.shape == (R * R, R * R)
    torch.testing.assert_close(k.sum(1), torch.ones(R * R))
    assert (k.diagonal() >= k.max(1).values - 1e-6).all()  # each pixel is most similar to itself


@pytest.mark.parametrize("fusion", hierarchy.FUSIONS)
def test_fuse_rows_sum_to_one(fusion):
    a, c = random_maps(0), random_maps(1)
    out = hierarchy.fuse(a, c, fusion)
    assert out.shape == a.shape
    torch.testing.assert_close(out.sum(1), torch.ones(R * R))


def test_fuse_rules():
    a, c = random_maps(0), random_maps(1)
    torch.testing.assert_close(hierarchy.fuse(a, c, "attention"), a)
    torch.testing.assert_close(hierarchy.fuse(a, c, "features"), c)
    torch.testing.assert_close(hierarchy.fuse(a, c, "random_walk"), a @ c)
    ref = a * c / (a * c).sum(1, keepdim=True)
    torch.testing.assert_close(hierarchy.fuse(a, c, "reweight"), ref)


@pytest.mark.parametrize("fusion", hierarchy.FUSIONS)
def test_contextual_similarity_on_organism(capture, fusion):
    m = hierarchy.contextual_similarity(capture.self_attention(50, 1), capture.features(50, TAP, 1), fusion)
    side = 16  # the organism's highest self-attention side
    assert m.shape == (side * side, side * side)
    torch.testing.assert_close(m.sum(1), torch.ones(side * side, dtype=torch.float64), atol=1e-4, rtol=0)
    assert (m >= 0).all()


def test_disagreement_is_zero_for_identical_neighbours():
    row = random_maps(3, n=1).expand(R * R, R * R)
    assert timemap.disagreement(row).abs().max() < 1e-5
    d = timemap.disagreement(random_maps(4))
    assert d.shape == (R * R,) and (d > 0).all()


@pytest.mark.parametrize("grouping", hierarchy.GROUPINGS)
def test_grouping_shapes(grouping):
    block = torch.zeros(R * R, R * R)
    half = (torch.arange(R * R) % R) < R // 2  # left and right halves of the grid
    block[half[:, None] & half[None, :]] = 1
    block[~half[:, None] & ~half[None, :]] = 1
    maps = (block + 1e-3) / (block + 1e-3).sum(1, keepdim=True)
    params = {"kl_threshold": 1.1, "num_points": 4, "iterations": 2, "tau": 0.5, "alpha": 10.0}
    labels = hierarchy.group(maps, grouping, (8, 9), **params)
    assert labels.shape == (8, 9)
    labels = hierarchy.group(maps, grouping, 8, **params)
    assert labels.shape == (8, 8) and labels.dtype == torch.long
    assert len(labels.unique()) == 2


@pytest.mark.parametrize("pipeline", ["mix", "region"])
def test_adaptive_segment_on_organism(capture, pipeline):
    maps = {t: capture.self_attention(t, 0) for t in (50, 300)}
    features = {t: capture.features(t, TAP, 0) for t in (50, 300)}
    labels, choice = hierarchy.adaptive_segment(maps, features, 32, grouping="diffseg", pipeline=pipeline,
                                                criterion="entropy", fusion="reweight", kl_threshold=1.1,
                                                num_points=8, iterations=2)
    assert labels.shape == (32, 32) and choice.shape == (16, 16)
    assert set(choice.unique().tolist()) <= {0, 1}


@pytest.mark.parametrize("call, name", [
    (lambda: hierarchy.fuse(random_maps(0), random_maps(1), "product"), "fusion"),
    (lambda: hierarchy.fuse(random_maps(0), None, "reweight"), "kernel"),
    (lambda: hierarchy.feature_kernel(torch.randn(2, 2, 3), R, temperature=0.0), "temperature"),
    (lambda: hierarchy.group(random_maps(0), "kmeans", 8), "grouping"),
])
def test_bad_arguments_name_themselves(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_bad_fusion_and_missing_features_on_capture(capture):
    with pytest.raises(ValueError, match="fusion"):
        hierarchy.contextual_similarity(capture.self_attention(50, 0), fusion="mean")
    with pytest.raises(ValueError, match="needs features"):
        hierarchy.contextual_similarity(capture.self_attention(50, 0), fusion="reweight")


def test_layer_entropy_is_normalised(capture):
    ent = hierarchy.layer_entropy(capture.self_attention(50, 0))
    assert set(ent) == set(capture.self_attention(50, 0))
    assert all(0 <= e <= 1 + 1e-6 for e in ent.values())


def test_adaptive_method_segments_an_image(organism, scene_image):
    import zsnb

    assert zsnb.params("adaptive", organism).record.grouping == "ncut"  # the organism's chosen design
    fine = zsnb.segment("adaptive", organism, scene_image, timesteps=(100, 500), tau=0.99)
    coarse = zsnb.segment("adaptive", organism, scene_image, timesteps=(100, 500), tau=1e-6)
    assert fine.shape == (32, 32) and fine.dtype == torch.long
    assert fine.max() > coarse.max() == 0  # NCut splits only below tau: a tiny tau keeps one segment
    merged = zsnb.segment("adaptive", organism, scene_image, timesteps=(100, 500), grouping="diffseg",
                          pipeline="region", kl_threshold=100.0)
    assert merged.max() == 0  # a huge KL threshold merges everything
    with pytest.raises(ValueError, match="grouping"):
        zsnb.segment("adaptive", organism, scene_image, grouping="kmeans")
    with pytest.raises(ValueError, match="unknown parameter .steps."):
        zsnb.segment("adaptive", organism, scene_image, steps=3)
