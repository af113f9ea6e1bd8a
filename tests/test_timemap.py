"""zsnb.timemap: per-token t maps from criteria, and the pipelines that segment with a t map."""

from __future__ import annotations

import pytest
import torch

from zsnb import hierarchy, metrics, timemap

R = 4  # 16 tokens


def random_maps(seed: int, n: int = R * R, sharpness: float = 3.0) -> torch.Tensor:
    """(n, n) row-stochastic softmax of seeded random logits."""
    g = torch.Generator().manual_seed(seed)
    return (sharpness * torch.randn(n, n, generator=g)).softmax(1)


def halves(eps: float = 1e-3) -> torch.Tensor:
    """(16, 16) maps of two blocks: the left and right halves of the 4 x 4 grid."""
    left = (torch.arange(R * R) % R) < R // 2
    block = (left[:, None] == left[None, :]).float()
    return (block + eps) / (block + eps).sum(1, keepdim=True)


def stats_of(**columns: list[list[float]]) -> dict[str, torch.Tensor]:
    """Statistics {name: (T, N)} with zeros for the names not given."""
    shape = torch.tensor(next(iter(columns.values()))).shape
    return {name: torch.tensor(columns[name], dtype=torch.float64) if name in columns else torch.zeros(shape)
            for name in timemap.STATISTICS}


def test_entropy_bias_moves_the_choice_to_larger_t():
    st = stats_of(entropy=[[0.0, 0.5], [0.4, 0.9], [1.0, 1.0]])  # T = 3, N = 2: token 1's entropy flat at top
    assert timemap.choose(st, "entropy", 0.0).tolist() == [0, 0]
    assert timemap.choose(st, "entropy", 1.5).tolist() == [2, 2]


def test_stability_is_the_first_t_whose_row_stops_changing():
    st = stats_of(change=[[0.5, 0.5], [0.01, 0.5], [0.0, 0.0]])
    assert timemap.choose(st, "stability", 0.1).tolist() == [1, 2]


def test_growth_is_the_first_t_whose_segment_has_merged():
    import math

    st = stats_of(log_area=[[math.log(0.1), math.log(0.5)], [math.log(0.15), math.log(0.5)],
                            [math.log(0.4), math.log(0.5)]])
    assert timemap.choose(st, "growth", 2.0).tolist() == [2, 2]  # token 1 never grows: the last t
    assert timemap.choose(st, "growth", 1.4).tolist() == [1, 2]


def test_statistics_shapes_and_values():
    maps = torch.stack([halves(), halves(), random_maps(0)])
    labels = torch.zeros(3, 8, 8, dtype=torch.long)
    labels[:, :, 4:] = 1
    st = timemap.statistics(maps, labels)
    assert set(st) == set(timemap.STATISTICS) and all(v.shape == (3, R * R) for v in st.values())
    assert st["change"][0].abs().max() < 1e-6 and (st["change"][2] == 0).all()  # same maps; nothing after the last
    torch.testing.assert_close(st["log_area"], torch.full((3, R * R), 0.5).log())
    assert (st["disagreement"][0] >= 0).all()


def test_mix_rows_and_smooth():
    maps = torch.stack([random_maps(1), random_maps(2)])
    choice = torch.zeros(R * R, dtype=torch.long)
    choice[5] = 1
    mixed = timemap.mix_rows(maps, choice)
    torch.testing.assert_close(mixed[5], maps[1, 5])
    torch.testing.assert_close(mixed[4], maps[0, 4])
    assert (timemap.smooth(choice) == 0).all()  # one token alone among zeros is voted away


def test_region_select_cuts_only_where_the_map_asks():
    coarse = torch.zeros(8, 8, dtype=torch.long)
    fine = torch.zeros(8, 8, dtype=torch.long)
    fine[:, 4:] = 1
    fine[4:, :4] = 2
    ladder = torch.stack([fine, coarse])  # t index 0 fine, 1 coarse
    assert timemap.region_select(ladder, torch.ones(8, 8, dtype=torch.long)).unique().numel() == 1
    assert timemap.region_select(ladder, torch.zeros(8, 8, dtype=torch.long)).unique().numel() == 3


def test_pairwise_with_a_constant_map_is_the_static_ncut():
    maps = torch.stack([random_maps(3, sharpness=2.0), halves()])
    for k in (0, 1):
        choice = torch.full((R * R,), k, dtype=torch.long)
        torch.testing.assert_close(timemap.ncut_pairwise(maps, choice, 8, tau=0.5, alpha=10.0),
                                   hierarchy.group(maps[k], "ncut", 8, tau=0.5, alpha=10.0))


@pytest.mark.parametrize("pipeline", hierarchy.PIPELINES)
def test_every_pipeline_with_a_constant_map_is_the_static_grouping(pipeline):
    maps = torch.stack([random_maps(4, sharpness=2.0), halves()]).double()
    grouping = "ncut" if pipeline == "pairwise" else "diffseg"
    values = {"tau": 0.5, "alpha": 10.0} if grouping == "ncut" else {"kl_threshold": 0.5, "num_points": 4,
                                                                      "iterations": 2}
    choice = torch.ones(R * R, dtype=torch.long)
    got = hierarchy.segment_with_tmap(maps, choice, grouping, pipeline, 8, **values)
    static = hierarchy.group(maps[1], grouping, 8, **values)
    assert metrics.adjusted_rand_index(got, static) == pytest.approx(1.0)  # the same partition


def test_selector_learns_a_separable_rule():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 3, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 0] > 1).long()  # three ordered classes along one feature
    sel = timemap.fit_selector(x, y, 3)
    assert (sel.predict(x) == y).float().mean() > 0.9


@pytest.mark.parametrize("call, name", [
    (lambda: timemap.choose(stats_of(entropy=[[0.0]]), "variance", 0.0), "criterion"),
    (lambda: timemap.choose(stats_of(entropy=[[0.0]]), "entropy", float("nan")), "knob"),
    (lambda: timemap.stack({300: random_maps(0), 50: random_maps(1)}), "maps_by_t"),
    (lambda: timemap.stack([]), "maps_by_t"),
    (lambda: timemap.region_select(torch.zeros(2, 4, 4, dtype=torch.long), torch.zeros(3, 3, dtype=torch.long)),
     "share"),
    (lambda: hierarchy.segment_with_tmap(torch.stack([halves()]), torch.zeros(R * R, dtype=torch.long), "diffseg",
                                         "pairwise", 8), "grouping='ncut'"),
    (lambda: hierarchy.segment_with_tmap(torch.stack([halves()]), torch.zeros(R * R, dtype=torch.long), "diffseg",
                                         "blend", 8), "pipeline"),
])
def test_bad_arguments_name_themselves(call, name):
    with pytest.raises(ValueError, match=name):
        call()
