"""The organism: shipped weights load offline, training runs and resumes, sampling works."""

from __future__ import annotations

import json

import pytest
import torch

from zsnb import world
from zsnb.organism import WEIGHTS_DIR, sample, train


def test_shipped_weights_and_records(organism):
    info = json.loads((WEIGHTS_DIR / "training.json").read_text())
    assert info["steps"] > 0 and info["wall_s"] > 0 and len(info["loss_every_10_steps"]) > 10
    assert info["sessions"][0]["from_step"] == 0 and all(s["threads"] > 0 and s["machine"] for s in info["sessions"])
    assert info["sessions"][-1]["world"] == world.DESIGN  # the shipped weights last trained on today's world
    assert (WEIGHTS_DIR / "unet.safetensors").stat().st_size <= 10 * 2**20  # the shipped-weights budget
    defaults = json.loads((WEIGHTS_DIR / "defaults.json").read_text())
    assert "TRAIN_SEEDS" in defaults["chosen_on"]
    from zsnb import registry

    for method, tuned in defaults.items():
        if method in registry.REGISTRY:  # the tuned values replace the official ones, key by key
            record, sources = registry.params(method, organism)
            assert {k: getattr(record, k) for k in tuned} == {
                k: tuple(v) if isinstance(v, list) else v for k, v in tuned.items()}, method
            assert all(sources[k].startswith("organism tuning") for k in tuned), method


def test_trained_differs_from_random(organism, organism_random):
    a = dict(organism.unet.named_parameters())["conv_in.weight"]
    b = dict(organism_random.unet.named_parameters())["conv_in.weight"]
    assert not torch.equal(a, b)


def test_training_steps_run_and_resume(tmp_path):
    kwargs = {"batch": 2, "lr": 1e-3, "warmup": 2, "ema": 0.9, "grad_clip": 1.0, "seed": 0, "checkpoint_every": 1}
    record = train.train(tmp_path, steps=2, **kwargs)
    assert record["step"] == 2 and len(record["losses"]) == 2
    assert all(torch.isfinite(torch.tensor(record["losses"])))
    resumed = train.train(tmp_path, steps=3, **kwargs)
    assert resumed["step"] == 3 and resumed["losses"][:2] == record["losses"]
    assert [s["from_step"] for s in resumed["sessions"]] == [0, 2]  # each session's threads are on record
    assert all(s["world"] == world.DESIGN for s in resumed["sessions"])


def test_bf16_training_steps_run_and_bad_precision_is_named(tmp_path):
    kwargs = {"batch": 2, "lr": 1e-3, "warmup": 2, "ema": 0.9, "grad_clip": 1.0, "seed": 0}
    record = train.train(tmp_path / "bf16", steps=1, precision="bf16", **kwargs)
    assert record["step"] == 1 and torch.isfinite(torch.tensor(record["losses"])).all()
    with pytest.raises(ValueError, match="precision='fp16'"):
        train.train(tmp_path / "bad", steps=1, precision="fp16", **kwargs)


def test_sampling_shapes(organism):
    samples = sample(organism.unet, 2, steps=3, seed=0)
    assert samples.shape == (2, 3, 32, 32) and 0 <= samples.min() and samples.max() <= 1


def test_hierarchy_gaps_take_the_best_t_of_each_set():
    from experiments.timesteps import LARGE_T, SMALL_T
    from experiments.tune import hierarchy_gaps

    rows = [{"timestep": t, "kl_threshold": 0.1, "miou_parts": 0.5 if t in SMALL_T else 0.3,
             "miou_objects": 0.4 if t in SMALL_T else 0.6} for t in (*SMALL_T, *LARGE_T)]
    rows[0]["miou_parts"] = 0.7  # the best small t counts, not the mean
    rows.append({"timestep": LARGE_T[0], "kl_threshold": 0.2, "miou_parts": 0.0, "miou_objects": 0.0})
    gaps = hierarchy_gaps(rows, 0.1)
    assert gaps["parts"] == pytest.approx(0.4) and gaps["objects"] == pytest.approx(0.2)


def test_defaults_record_the_hierarchy_threshold():
    from experiments.timesteps import LARGE_T, SMALL_T
    from zsnb.organism import method_defaults

    h = method_defaults()["hierarchy"]
    assert h["noise"] == "seeded" and h["small_t"] == list(SMALL_T) and h["large_t"] == list(LARGE_T)
    assert h["kl_threshold"] > 0


def test_best_small_large_picks_within_each_set():
    from experiments.timesteps import LARGE_T, SMALL_T, best_small_large

    by_t = {t: {"miou": -abs(t - 50) if t in SMALL_T else -abs(t - 600)} for t in (*SMALL_T, 200, *LARGE_T)}
    by_t[200]["miou"] = 1.0  # between the sets: never chosen
    assert best_small_large(by_t, "miou") == (50, 600)
