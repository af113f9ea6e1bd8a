"""zsnb.similarity: label pooling, own-segment mass, pair sampling, pair KL, rank AUC; experiments.survey."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from experiments.survey import survey
from zsnb import diffseg, similarity, viz, world

matplotlib.use("Agg")


def stripes(r: int, k: int) -> torch.Tensor:
    """(r, r) labels: k vertical stripes 0..k-1."""
    return (torch.arange(r) * k // r).expand(r, r).clone()


def random_maps(q: int, seed: int) -> torch.Tensor:
    """(q, q) random row-stochastic maps."""
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(3 * torch.randn(q, q, generator=g), dim=1)


def test_pool_labels_mode_ties_and_nearest() -> None:
    lab = torch.tensor([[1, 1, 2, 2], [1, 3, 2, 0], [5, 5, 4, 4], [6, 6, 0, 4]])
    assert similarity.pool_labels(lab, 2).tolist() == [[1, 2], [5, 4]]  # 5 vs 6 tie: smallest id
    assert torch.equal(similarity.pool_labels(lab.numpy(), 4), lab)
    assert similarity.pool_labels(lab, 1).tolist() == [[1]]  # 1, 2 and 4 have 3 pixels each: smallest wins
    assert similarity.pool_labels(lab, 3).tolist() == [[1, 2, 2], [5, 4, 4], [6, 0, 4]]  # nearest-exact
    with pytest.raises(ValueError, match="square"):
        similarity.pool_labels(lab[:3], 2)


def test_own_mass_uniform_identity_and_blocks() -> None:
    lab = stripes(4, 2)
    mass, chance = similarity.own_mass(torch.full((16, 16), 1 / 16), lab)
    assert torch.allclose(mass, chance) and torch.allclose(chance, torch.full((16,), 0.5))
    mass, _ = similarity.own_mass(torch.eye(16), lab)
    assert torch.allclose(mass, torch.ones(16))
    same = (lab.flatten()[:, None] == lab.flatten()[None, :]).float()
    mass, _ = similarity.own_mass(0.8 * same / same.sum(1, keepdim=True) + 0.2 / 16, lab)
    assert torch.allclose(mass, torch.full((16,), 0.9))
    with pytest.raises(ValueError, match="Q, Q"):
        similarity.own_mass(torch.eye(9), lab)


def test_sample_pairs_respect_labels_and_are_seeded() -> None:
    lab = torch.tensor([[0, 0, 1, 1], [0, 2, 1, 1], [3, 3, 3, 3], [3, 3, 3, 3]])  # label 2 is a singleton
    same, diff = similarity.sample_pairs(lab, 2000, torch.Generator().manual_seed(0))
    flat = lab.flatten()
    assert (flat[same[:, 0]] == flat[same[:, 1]]).all() and (same[:, 0] != same[:, 1]).all()
    assert (flat[diff[:, 0]] != flat[diff[:, 1]]).all()
    assert len(diff) == 2000 and 1700 < len(same) < 2000  # queries on the singleton have no same partner
    assert (flat[same[:, 0]] != 2).all()
    assert set(same.flatten().tolist()) | {5} == set(range(16)) and set(diff[:, 1].tolist()) == set(range(16))
    again = similarity.sample_pairs(lab, 2000, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], same) and torch.equal(again[1], diff)
    # partners are uniform within the segment: each of the 7 other pixels of label 3 gets ~1/7
    first = same[same[:, 0] == 8, 1]
    counts = torch.bincount(first, minlength=16)[9:].float()
    assert counts.min() > 0.4 * counts.mean()


def test_sample_pairs_single_segment() -> None:
    same, diff = similarity.sample_pairs(torch.zeros(3, 3, dtype=torch.long), 50, torch.Generator())
    assert len(same) == 50 and len(diff) == 0


def test_pair_kl_matches_diffseg_symmetric_kl() -> None:
    maps = random_maps(16, 0)
    pairs = torch.tensor([[0, 1], [3, 3], [15, 2]])
    full = diffseg.symmetric_kl(maps, maps)
    assert torch.allclose(similarity.pair_kl(maps, pairs), full[pairs[:, 0], pairs[:, 1]], atol=1e-5)
    assert similarity.pair_kl(maps, pairs)[1] == 0


def test_roc_auc_against_pairwise_count() -> None:
    assert similarity.roc_auc([0, 1, 2], [3, 4]) == 1.0
    assert similarity.roc_auc([3, 4], [0, 1, 2]) == 0.0
    assert similarity.roc_auc([1, 1], [1, 1, 1]) == 0.5
    rng = np.random.default_rng(0)
    neg, pos = rng.integers(0, 6, 40), rng.integers(2, 9, 30)  # many ties
    brute = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (40 * 30)
    assert similarity.roc_auc(neg, pos) == pytest.approx(brute)
    with pytest.raises(ValueError, match="at least one"):
        similarity.roc_auc([], [1.0])


def test_views_names_shapes_and_short_names() -> None:
    maps = {"down_blocks.1.attentions.0.transformer_blocks.0.attn1": random_maps(16, 1),
            "up_blocks.2.attentions.1.transformer_blocks.0.attn1": random_maps(16, 2),
            "mid_block.attentions.0.transformer_blocks.0.attn1": random_maps(4, 3)}
    vs = similarity.views(maps)
    assert list(vs)[3:] == ["4x4", "2x2", "aggregate"]
    assert torch.allclose(vs["4x4"], (maps[list(maps)[0]] + maps[list(maps)[1]]) / 2)
    assert vs["aggregate"].shape == (16, 16) and torch.allclose(vs["aggregate"].sum(1), torch.ones(16))
    assert similarity.diffseg_views(vs) == ["4x4", "2x2", "aggregate"]
    assert [similarity.short_name(n) for n in maps] == ["down1.0", "up2.1", "mid.0"]
    assert similarity.short_name("aggregate") == "aggregate"


def test_survey_on_untrained_organism(organism_random) -> None:
    seeds = list(world.EVAL_SEEDS[:2])
    sv = survey(organism_random, seeds, 300, n_pairs=20, batch=2)
    sides = organism_random.attention_layers("self")
    assert set(sv.intra) == {"objects", "parts"}
    assert set(sv.sides.values()) == set(sides) and sv.sides["aggregate"] == max(sides)
    for level in ("objects", "parts"):
        for view, arr in sv.intra[level].items():
            assert arr.shape == (2, 2) and ((arr >= 0) & (arr <= 1 + 1e-5)).all(), view
        assert set(sv.inter[level]) == {f"{r}x{r}" for r in sides} | {"aggregate"}
        assert 0 <= sv.auc(level, "aggregate") <= 1
        m, c, e, se = sv.intra_summary(level)["aggregate"]
        assert e == pytest.approx(m - c) and se >= 0
    assert set(sv.inter["parts"]["aggregate"]) == {"same", "different", "sibling"}
    fig, axes = plt.subplots(1, 2)
    viz.plot_intra(axes[0], {"random": sv}, "objects")
    viz.plot_inter(axes[1], sv, "parts", "aggregate", tau=1.0)
    plt.close("all")


def test_diffseg_figures_draw() -> None:
    from zsnb import worldeval

    agg = diffseg.aggregate({"layer": random_maps(16, 4)})
    explore = viz.diffseg_explorer(agg, np.zeros((8, 8, 3)))
    explore(kl_threshold=0.5, num_points=2, iterations=2)
    assert len(plt.gcf().axes) == 2  # one panel per iteration
    scenes = [world.scene(s, 16) for s in world.EVAL_SEEDS[:2]]
    row = worldeval.score([np.zeros((16, 16), int)] * 2, scenes)
    fig, axes = plt.subplots(1, 3)
    viz.plot_sweep(axes, [0.5, 1.0], {"m": [row, row]}, {"baseline": row}, tau=1.0)
    assert axes[0].get_xscale() == "log"
    plt.close("all")


def test_explore_draws_once_then_redraws_when_a_control_moves() -> None:
    """`viz.explore` shows the figure at the controls' values and redraws it (in place) on each change."""
    import ipywidgets

    from zsnb import viz

    calls = []

    def draw(x: float) -> plt.Figure:
        calls.append(x)
        return plt.figure()

    slider = ipywidgets.FloatSlider(0.5)
    box = viz.explore(draw, x=slider)
    assert calls == [0.5] and list(box.children) == [slider] and not plt.get_fignums()
    slider.value = 0.75
    assert calls == [0.5, 0.75] and not plt.get_fignums()


def test_relation_density_separates_part_object_and_background() -> None:
    parts = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], [0, 0, 0, 0]])
    objects = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 0, 0]])
    uniform = similarity.relation_density(torch.full((16, 16), 1 / 16), parts, objects)
    assert all(abs(v - 1) < 1e-6 for v in uniform.values())
    same_object = (objects.flatten()[:, None] == objects.flatten()[None, :]).float()  # object-wide maps
    d = similarity.relation_density(same_object, parts, objects)
    assert d["own part"] == pytest.approx(d["other parts of own object"]) == 16 / 6  # half the mass on 3 of 16
    assert d["other objects"] == 0
    assert d["background"] == 0
    assert similarity.binding_ratio(uniform) == pytest.approx(1.0)
    assert similarity.binding_ratio({**d, "other objects": 0.5}) == pytest.approx(32 / 6)
    with pytest.raises(ValueError, match="Q, Q"):
        similarity.relation_density(torch.eye(9), parts, objects)


def test_map_statistics_tell_uniform_local_and_sink_maps_apart() -> None:
    q = 16  # a 4 x 4 grid
    uniform = similarity.map_statistics(torch.full((q, q), 1 / q))
    assert uniform["relative entropy"] == pytest.approx(1.0) and uniform["cosine to mean"] == pytest.approx(1.0)
    local = similarity.map_statistics(torch.eye(q))  # each query attends to itself only
    assert local["relative entropy"] == pytest.approx(0.0, abs=1e-6) and local["distance"] == 0.0
    assert local["cosine to mean"] == pytest.approx(0.25) and local["sink share"] == pytest.approx(1 / q)
    sink = torch.zeros(q, q)
    sink[:, 5] = 1.0  # every query sends all its mass to one key
    stats = similarity.map_statistics(sink)
    assert stats["relative entropy"] == pytest.approx(0.0, abs=1e-6)
    assert stats["cosine to mean"] == pytest.approx(1.0) and stats["sink share"] == pytest.approx(1.0)
    assert stats["distance"] > 0
