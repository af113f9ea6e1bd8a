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
    monkey = {**res, "config": {**res["config"], "backbone": "ssd-1b"}}  # as if run on DiffCut's backbone...
    assert "withheld: the organism's weights; 2 of 2,175 images" in evaluate.table([monkey])
    comparable = {**monkey, "run": {**res["run"], "weights": "pretrained", "n_official": 2}}  # ...and comparable
    assert "| 49.1 | Couairon" in evaluate.table([comparable])
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


def _result(**run) -> dict:
    """A COCO result of DiffSeg on sd14 as `write_results` makes it, with `run` changed."""
    full = {"weights": "pretrained", "weights_id": "CompVis/stable-diffusion-v1-4 (pretrained)", "family": "sd1",
            "size": 512, "official_size": 512, "changed": {}, "n_split": 2175, "n_official": 2175,
            "dtype": "float32", "device": "cuda:0", "processes": 1, **run}
    n = full.pop("n_images", 2175)
    result = {"config": {"method": "diffseg", "backbone": "sd14", "dataset": "coco-stuff-27"}, "complete": True,
              "n_expected": n, "run": full, "scores": {"n_images": n, "miou": 31.0, "acc": 60.0, "segments": 5.0},
              "paper": evaluate.paper("diffseg", "sd14", "coco-stuff-27")}
    return {**result, "caveats": evaluate.caveats(result)}


def test_a_paper_number_stands_beside_ours_only_for_a_comparable_run():
    same = evaluate.markdown(_result())
    assert "| ours | 31.0 |" in same and "| paper | 43.6 | 72.5 |" in same
    assert "pretrained weights (id: CompVis/stable-diffusion-v1-4" in same and "input 512 px (the official size" in same
    assert "2,175 of 2,175 images" in same and "float32 on cuda:0" in same
    for run, label in [({"weights": "random", "weights_id": "sd14 (random)"}, "random weights"),
                       ({"size": 128}, "128 px, official 512"), ({"n_images": 2}, "2 of 2,175 images"),
                       ({"changed": {"kl_threshold": [0.9, 1.1]}}, "kl_threshold 0.9, official 1.1")]:
        text = evaluate.markdown(_result(**run))
        assert "| paper |" not in text and "43.6 mIoU" in text and "not printed beside this row" in text, run
        ours = next(line for line in text.splitlines() if line.startswith("| ours"))
        assert label in ours and "31.0" in ours, run
        row = evaluate.table([_result(**run)]).splitlines()[-1]
        assert f"withheld: {label}" in row and "| 43.6 |" not in row, run
    assert "| 43.6 | Tian" in evaluate.table([_result()])
    head = evaluate.markdown(_result(weights="random", size=128, n_images=2)).split("\n\n")[1]
    assert head.startswith("Run: random weights") and "input 128 px (official 512 for sd1)" in head
    assert "2 of 2,175 images (a subset)" in head


def test_results_json_records_the_run_and_config_json_does_not_hold_the_device(tmp_path):
    res = evaluate.evaluate("diffseg", "organism", "world", tmp_path, limit=2, device="cpu", progress=False,
                            overrides={"size": 64})
    stored = json.loads((tmp_path / "results.json").read_text())
    assert stored["run"] == res["run"] and stored["run"]["device"] == "cpu" and stored["run"]["dtype"] == "float64"
    assert stored["run"]["size"] == 64 and stored["run"]["official_size"] == 32
    assert stored["run"]["n_official"] == len(world.EVAL_SEEDS) and "64 px, official 32" in stored["caveats"]
    assert "device" not in json.loads((tmp_path / "config.json").read_text())
    assert "Run: the organism's weights (id: organism sha256:" in (tmp_path / "results.md").read_text()


def test_check_reports_a_usable_coco_layout_and_exits_0(tmp_path, capsys):
    root = make_coco(tmp_path / "coco", ids=("a", "b"))
    assert cli.main(["evaluate", "--check", "--dataset", "coco-stuff-27", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "coco-stuff-27 at" in out and ": usable" in out and "2 ids, a .. b" in out
    assert "2 image/label pairs present" in out and "not the published curated list" in out
    assert "the split the papers evaluate on has 2,175" in out  # a subset: usable, and said so


def test_check_names_what_is_wrong_and_how_to_fix_it_and_exits_2(tmp_path, capsys):
    from layouts import save

    root = make_coco(tmp_path / "coco", ids=("a", "b", "c"))
    (root / "annotations/val2017/b.png").unlink()
    save(root / "annotations/val2017/c.png", np.zeros((20, 30), np.uint8))  # half the image's size
    (root / "images/val2017/a.jpg").write_bytes(b"not a jpeg")
    assert cli.main(["evaluate", "--check", "--dataset", "coco-stuff-27", "--root", str(root)]) == 2
    out = capsys.readouterr().out
    assert "NOT usable (3 problems)" in out
    assert "1 of 3 label maps missing: annotations/val2017/b.png" in out and "stuffthingmaps_trainval2017.zip" in out
    assert "c: image 60x40, label 30x20" in out and "header cannot be read" in out and "fix:" in out
    (root / "curated/val2017/Coco164kFull_Stuff_Coarse_7.txt").unlink()
    assert cli.main(["evaluate", "--check", "--dataset", "coco-stuff-27", "--root", str(root)]) == 2
    assert "COCOStuff164kCurated.tar.gz" in capsys.readouterr().out


def test_check_reads_voc_and_the_world(tmp_path, capsys):
    assert cli.main(["evaluate", "--check", "--dataset", "voc2012", "--root", str(make_voc(tmp_path / "voc"))]) == 0
    assert "1 image/label pair present" in capsys.readouterr().out
    assert cli.main(["evaluate", "--check"]) == 0 and "no files needed" in capsys.readouterr().out
