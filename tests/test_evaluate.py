"""The evaluation runner: protocol scores, resumable appends, config guard, 2-process sharding."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from layouts import make_coco, make_voc

import zsnb
from zsnb import cli, data, evaluate, registry, world, worldeval
from zsnb.errors import ZsnbError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_summarise_sums_counts_over_images_before_dividing():
    ds = data.Dataset("toy", ("a", "b"), lambda i: None, 2, ("x", "y"))
    records = [{"tp": [10, 0], "fp": [0, 5], "fn": [0, 5], "n_labelled": 20, "segments": 2},
               {"tp": [0, 10], "fp": [10, 0], "fn": [10, 0], "n_labelled": 20, "segments": 3}]
    s = evaluate.summarise(records, ds)
    assert s["iou"] == {"x": pytest.approx(100 * 10 / 30), "y": pytest.approx(100 * 10 / 20)}
    assert s["miou"] == pytest.approx(100 * (10 / 30 + 10 / 20) / 2) and s["acc"] == pytest.approx(50.0)
    assert s["segments"] == 2.5


def test_world_run_writes_records_and_tables(tmp_path):
    res = evaluate.evaluate("diffseg", "organism", "world", tmp_path, limit=4, device="cpu", progress=False)
    assert res["complete"] and res["scores"]["n_images"] == 4 and 0 < res["scores"]["miou_objects"] <= 1
    assert len((tmp_path / "records-0.jsonl").read_text().splitlines()) == 4
    assert json.loads((tmp_path / "results.json").read_text())["scores"] == res["scores"]
    assert "mIoU objects" in (tmp_path / "results.md").read_text()


def test_world_scores_are_those_of_worldeval(tmp_path):
    """The runner's world numbers are `worldeval.score` of the same predictions (one scoring, two callers)."""
    res = evaluate.evaluate("diffseg", "organism", "world", tmp_path, limit=3, device="cpu", progress=False)
    backbone = zsnb.load_backbone("organism")
    scenes = [world.scene(s) for s in world.EVAL_SEEDS[:3]]
    ref = worldeval.score([zsnb.segment("diffseg", backbone, s.image) for s in scenes], scenes)
    for key in ("miou_objects", "miou_objects_se", "miou_parts", "ari_objects", "segments"):
        assert res["scores"][key] == pytest.approx(ref[key]), key


def test_interrupted_run_resumes_without_redoing_finished_images(tmp_path, monkeypatch):
    clean = evaluate.evaluate("diffseg", "organism", "world", tmp_path / "clean", limit=5, device="cpu",
                              progress=False)
    calls = []
    method = registry.get("diffseg")

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user stops the run during the third image
        return method.segment_capture(*args, **kwargs)

    monkeypatch.setitem(registry.REGISTRY, "diffseg", dataclasses.replace(method, segment_capture=flaky))
    with pytest.raises(KeyboardInterrupt):
        evaluate.evaluate("diffseg", "organism", "world", tmp_path / "run", limit=5, device="cpu", progress=False)
    records = tmp_path / "run/records-0.jsonl"
    assert len(records.read_text().splitlines()) == 2
    with records.open("a") as f:
        f.write('{"index": 4, "name": "torn')  # a write cut off by a kill
    calls.clear()
    counting = dataclasses.replace(method, segment_capture=lambda *a, **k: (calls.append(1),
                                                                            method.segment_capture(*a, **k))[1])
    monkeypatch.setitem(registry.REGISTRY, "diffseg", counting)
    resumed = evaluate.evaluate("diffseg", "organism", "world", tmp_path / "run", limit=5, device="cpu",
                                progress=False)
    assert len(calls) == 3 and resumed["scores"] == clean["scores"]


def test_a_larger_limit_extends_a_finished_run(tmp_path):
    evaluate.evaluate("diffseg", "organism", "world", tmp_path, limit=2, device="cpu", progress=False)
    res = evaluate.evaluate("diffseg", "organism", "world", tmp_path, limit=3, device="cpu", progress=False)
    assert res["scores"]["n_images"] == 3 and len((tmp_path / "records-0.jsonl").read_text().splitlines()) == 3


def test_resuming_with_other_settings_is_refused(tmp_path):
    evaluate.evaluate("diffseg", "organism", "world", tmp_path, limit=1, device="cpu", progress=False)
    with pytest.raises(ZsnbError, match="new --out"):
        evaluate.evaluate("diffcut", "organism", "world", tmp_path, limit=1, device="cpu", progress=False)


@pytest.mark.parametrize("method", list(registry.REGISTRY))
def test_rerun_with_the_same_settings_resumes(tmp_path, method):
    """Every method's parameters survive the JSON round trip of config.json (tuples become lists)."""
    evaluate.evaluate(method, "organism", "world", tmp_path, limit=1, device="cpu", progress=False)
    res = evaluate.evaluate(method, "organism", "world", tmp_path, limit=2, device="cpu", progress=False)
    assert res["complete"] and res["scores"]["n_images"] == 2


def test_explicit_default_dtype_resumes_and_random_weights_run_offline(tmp_path):
    """The resolved dtype is compared, not the option as typed (the organism runs in float64 on the CPU anyway);
    --weights random is a run of its own."""
    evaluate.evaluate("diffseg", "organism", "world", tmp_path, limit=1, device="cpu", progress=False)
    res = evaluate.evaluate("diffseg", "organism", "world", tmp_path, limit=2, device="cpu", dtype="float64",
                            progress=False)
    assert res["complete"] and res["config"]["dtype"] == "float64"
    with pytest.raises(ZsnbError, match="weights"):
        evaluate.evaluate("diffseg", "organism", "world", tmp_path, limit=2, device="cpu", progress=False,
                          weights="random")
    cli.main(["evaluate", "--method", "diffseg", "--out", str(tmp_path / "random"), "--limit", "1", "--device", "cpu",
                   "--weights", "random", "--no-progress"])
    assert "random" in json.loads((tmp_path / "random/config.json").read_text())["weights"]


def test_resuming_with_other_weights_is_refused(tmp_path):
    """Records of a retrained organism must not mix with the old ones: the weights' hash is in the config."""
    evaluate.evaluate("diffseg", "organism", "world", tmp_path, limit=1, device="cpu", progress=False)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["weights"].startswith("organism sha256:") and config["parameters"]["kl_threshold"] > 0
    (tmp_path / "config.json").write_text(json.dumps({**config, "weights": "organism sha256:0000"}))
    with pytest.raises(ZsnbError, match="weights"):
        evaluate.evaluate("diffseg", "organism", "world", tmp_path, limit=1, device="cpu", progress=False)


def test_real_dataset_layout_runs_the_protocol_end_to_end(tmp_path):
    """COCO layout, organism backbone: per-image Hungarian counts are recorded and summed."""
    root = make_coco(tmp_path / "coco", ids=("a", "b"))
    res = evaluate.evaluate("diffcut", "organism", "coco-stuff-27", tmp_path / "out", root=root, device="cpu",
                            progress=False)
    monkey = {**res, "config": {**res["config"], "backbone": "ssd-1b"}}  # as if run on DiffCut's backbone
    assert "| 49.1 | Couairon" in evaluate.table([monkey])
    s = res["scores"]
    assert res["complete"] and s["n_images"] == 2 and 0 <= s["miou"] <= 100 and 0 <= s["acc"] <= 100
    rec = json.loads((tmp_path / "out/records-0.jsonl").read_text().splitlines()[0])
    assert len(rec["tp"]) == 27 and rec["n_labelled"] == 32 * 32 - 32  # the unlabelled top row is ignored
    assert res["paper"] is None and "no published number" in (tmp_path / "out/results.md").read_text()


def test_background_datasets_use_many_to_one_matching(tmp_path):
    root = make_voc(tmp_path / "voc")
    rec = evaluate.score_sample(torch.zeros(32, 32, dtype=torch.long), data.Sample("x", None, None),
                                np.zeros((32, 32), np.int64), data.load_dataset("voc2012", root))
    assert rec["tp"][0] == 32 * 32 and sum(rec["fp"]) == 0  # one segment, all background: perfect


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["evaluate", "--method", "diffseg", "--dataset", "voc2012", "--out", str(tmp_path)])
    assert e.value.code == 2 and "needs --root" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("accelerate", path=os.path.dirname(sys.executable)) is None,
                    reason="accelerate is not installed")
def test_two_processes_give_the_numbers_of_one(tmp_path):
    """`accelerate launch` with 2 CPU processes shards by image and merges to the single-process result."""
    single = evaluate.evaluate("diffseg", "organism", "world", tmp_path / "one", limit=6, device="cpu",
                               progress=False)
    launcher = os.path.join(os.path.dirname(sys.executable), "accelerate")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([launcher, "launch", "--multi_gpu", "--num_processes", "2", "-m", "zsnb", "evaluate",
                    "--method", "diffseg", "--out", str(tmp_path / "two"), "--limit", "6", "--device", "cpu",
                    "--no-progress"], check=True, env=env, capture_output=True, timeout=600)
    two = json.loads((tmp_path / "two/results.json").read_text())
    assert sorted(p.name for p in (tmp_path / "two").glob("records-*.jsonl")) == ["records-0.jsonl",
                                                                                   "records-1.jsonl"]
    assert two["complete"] and two["scores"] == pytest.approx(single["scores"])
