"""experiments: timestep sweeps, static vs adaptive t*, per-area IoU, tuning grids, on the organism's world."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from experiments import adaptive, areas, timesteps, tune
from zsnb import registry, timemap, world
from zsnb.errors import ZsnbError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def needs_seen(monkeypatch):
    """Records the Needs of every capture a backbone is asked for: spy(backbone) -> the list they go to."""
    def spy(backbone) -> list:
        seen, real = [], backbone.capture
        monkeypatch.setattr(backbone, "capture", lambda images, needs: seen.append(needs) or real(images, needs))
        return seen
    return spy


def test_timestep_sweep_captures_every_t_once_per_batch(organism, needs_seen):
    seen = needs_seen(organism)
    out = timesteps.timestep_sweep(organism, world.EVAL_SEEDS[:3], (300, 50), noise="seeded", draws=2, batch=2,
                                   diffseg=timesteps.sweep_diffseg(organism))
    assert [n.timesteps for n in seen] == [(50, 300)] * 2 and {n.draws for n in seen} == {2}  # 2 batches, all t
    assert seen[0].noise == "seeded" and seen[0].features == (registry.params("diffcut", organism).record.tap,)
    assert set(out) == {300, 50} and set(out[50]["entropy"]) == set(organism.attention_layers("self"))
    assert out[50]["diffseg"]["n_scenes"] == out[50]["diffcut"]["n_scenes"] == 3
    timesteps.timestep_sweep(organism, world.EVAL_SEEDS[:1], (300,))
    assert seen[-1].draws == 1 and seen[-1].noise == "none"


def test_sweep_diffseg_is_the_tuned_hierarchy_entry_on_the_organism(organism):
    from zsnb.organism import method_defaults

    h = method_defaults()["hierarchy"]
    assert timesteps.sweep_diffseg(organism) == {"kl_threshold": h["kl_threshold"], "num_points": h["num_points"],
                                                 "draws": h["draws"]}
    assert h["draws"] > 1  # the sweeps average seeded noise draws; the methods' own default stays one draw
    assert registry.params("diffseg", organism).record.draws == 1


def test_best_within_se_lists_the_timesteps_the_argmax_cannot_tell_apart():
    by_t = {0: {"m": 0.50, "m_se": 0.01}, 50: {"m": 0.60, "m_se": 0.05}, 300: {"m": 0.56, "m_se": 0.01},
            700: {"m": 0.54, "m_se": 0.01}}
    assert timesteps.best_within_se(by_t, "m") == (50, [50, 300])  # 0.54 < 0.60 - 0.05 <= 0.56
    by_t[50]["m_se"] = 0.001
    assert timesteps.best_within_se(by_t, "m") == (50, [50])


def test_adaptive_study_pieces_on_the_world(organism_random, needs_seen):
    seen = needs_seen(organism_random)
    scenes = adaptive.capture(organism_random, world.EVAL_SEEDS[:2], (300, 50), draws=1, taps=("down_last_attn1",))
    assert [n.timesteps for n in seen] == [(50, 300)]  # one capture holds both t
    sm = scenes[0]
    assert sm.maps.shape == (2, 256, 256) and sm.taps["down_last_attn1"].shape[:1] == (2,)
    values = {"num_points": 4, "iterations": 2}
    rungs = adaptive.ladder(sm, "diffseg", 0.5, values)
    assert rungs.shape == (2, 32, 32) and adaptive.ladder(sm, "diffseg", 0.5, values) is rungs  # cached
    for prefer in (0, 1):
        pixels, best = adaptive.object_oracle(rungs, sm.gt("objects"), prefer)
        assert pixels.shape == (32, 32) and set(best) == set(np.unique(sm.gt("objects")).tolist())
    ceiling = adaptive.miou(adaptive.compose(rungs, sm.gt("objects"), best), sm, "objects")
    assert ceiling >= max(adaptive.miou(r, sm, "objects") for r in rungs) - 1e-9
    for pipeline in adaptive.PIPELINES["ncut"]:
        labels = adaptive.run(sm, "ncut", pipeline, torch.zeros(256, dtype=torch.long), 0.5, {"alpha": 10.0})
        assert labels.shape == (32, 32)
    start = adaptive.object_oracle(rungs, sm.gt("objects"), 0)[1]
    arm = lambda s, c: adaptive.run(s, "diffseg", "region", c, 0.5, values)  # noqa: E731
    lut = torch.tensor([start.get(i, 0) for i in range(int(sm.gt("objects").max()) + 1)])
    first = adaptive.miou(arm(sm, lut[timemap.token_labels(torch.from_numpy(sm.gt("objects")), 16)]), sm, "objects")
    assert adaptive.greedy(sm, arm, start, 2, "objects") >= first
    d = adaptive.paired(np.array([0.5, 0.7, 0.6]), np.array([0.4, 0.6, 0.6]))
    assert d["diff"] == pytest.approx(0.2 / 3) and d["lo"] < d["diff"] < d["hi"]


def test_beats_needs_both_the_gain_and_the_standard_errors():
    assert adaptive.beats(0.04, 0.01) and not adaptive.beats(0.04, 0.02) and not adaptive.beats(0.02, 0.001)


def test_iou_by_area_bins_segments_by_size():
    scenes = [world.scene(s) for s in world.EVAL_SEEDS[:4]]
    perfect = areas.iou_by_area([s.objects for s in scenes], scenes, "objects")
    assert sum(b["n"] for b in perfect) == sum(len(np.unique(s.objects)) - 1 for s in scenes)
    assert all(b["iou"] == 1 for b in perfect if b["n"])
    one = areas.iou_by_area([np.zeros_like(s.parts) for s in scenes], scenes, "parts")
    assert all(b["iou"] == 0 for b in one if b["n"])  # the single segment goes to the background
    with pytest.raises(ZsnbError, match="level"):
        areas.iou_by_area([], [], "pixels")


def test_area_labels_name_closed_and_open_bins():
    assert areas.area_label({"lo": 32, "hi": 64}) == "32-64 px"
    assert areas.area_label({"lo": 128, "hi": areas.AREA_EDGES[-1]}) == "≥ 128 px"


def test_tuning_grid_captures_once_per_capture_setting(organism_random, needs_seen):
    seen = needs_seen(organism_random)
    rows = tune.grid_scores(organism_random, "diffseg", world.TRAIN_SEEDS[:2],
                            [{"noise": "none", "timestep": 300}, {"noise": "seeded", "timestep": 50}],
                            [{"kl_threshold": 0.1, "num_points": 4}, {"kl_threshold": 1.1, "num_points": 8}])
    assert [(n.noise, n.timesteps) for n in seen] == [("none", (300,)), ("seeded", (50,))]
    assert [(r["timestep"], r["kl_threshold"]) for r in rows] == [(300, 0.1), (300, 1.1), (50, 0.1), (50, 1.1)]
    assert all(r["n_scenes"] == 2 for r in rows)


def test_nothing_in_zsnb_imports_experiments():
    import re
    from pathlib import Path

    import zsnb

    importing = [p.name for p in Path(zsnb.__file__).parent.rglob("*.py")
                 if re.search(r"^\s*(from|import) experiments\b", p.read_text(), re.M)]
    assert importing == []
