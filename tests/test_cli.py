"""`python -m zsnb segment`: a mixed folder, reruns, interruption, label PNG round trip, errors and --help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zsnb
from zsnb import cli, registry, world

pytestmark = pytest.mark.usefixtures("one_thread")
GOOD = ("good.png", "sub/photo.jpg", "gray.png")  # output names of the readable images


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """good.png (RGB), sub/photo.jpg, gray.png (mode L), corrupt.png (a cut-off PNG), notes.txt (not an image)."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    scene = (world.scene(world.EVAL_SEEDS[0], 64).image * 255).round().astype(np.uint8)
    Image.fromarray(scene).resize((50, 40)).save(root / "good.png")
    Image.fromarray(scene).save(root / "sub/photo.jpg", quality=90)
    Image.fromarray(scene).convert("L").resize((36, 36)).save(root / "gray.png")
    (root / "corrupt.png").write_bytes((root / "good.png").read_bytes()[:60])
    (root / "notes.txt").write_text("not an image")
    return root


def run(*args: str) -> int:
    return cli.main(["segment", "--method", "randomwalk", "--backbone", "organism", "--device", "cpu",
                     "--no-progress", *args])


def test_mixed_folder_writes_the_good_names_the_bad_and_reruns_skip(folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(str(folder), str(folder / "notes.txt"), "--out", str(out)) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "corrupt.png" in err and "notes.txt" in err and "good.png" not in err
    for name in GOOD:
        record = json.loads((out / f"{name}.json").read_text())
        labels = cli.read_labels(out / f"{name}.labels.png")
        with Image.open(folder / name) as im:
            assert labels.shape == (im.height, im.width)
            assert Image.open(out / f"{name}.overlay.png").size == im.size
        assert record["segments"] == len(np.unique(labels)) >= 1 and record["seconds"] > 0
        assert record["method"] == "randomwalk" and record["parameters"] == json.loads(json.dumps(
            registry.family_params("randomwalk", "organism").record.as_dict(), default=list))
    assert not (out / "corrupt.png.json").exists() and not list(out.rglob(".*.tmp"))
    stamps = {name: (out / f"{name}.json").stat().st_mtime_ns for name in GOOD}
    assert run(str(folder), "--out", str(out)) == cli.EXIT_FAILED  # the corrupt file still fails
    assert "0 segmented here, 3 already done, 0 done by another process, 1 failed" in capsys.readouterr().out
    assert stamps == {name: (out / f"{name}.json").stat().st_mtime_ns for name in GOOD}


def test_labels_are_the_same_as_the_api_and_round_trip(folder, tmp_path, organism):
    out = tmp_path / "out"
    run(str(folder / "good.png"), "--out", str(out))
    expected = zsnb.segment("randomwalk", organism, folder / "good.png")
    assert np.array_equal(cli.read_labels(out / "good.png.labels.png"), expected.numpy())
    for top in (5, 300):  # 8-bit and 16-bit PNGs
        labels = torch.arange(20 * 30).reshape(20, 30) % (top + 1)
        cli.save_labels(labels, tmp_path / f"{top}.png")
        back = cli.read_labels(tmp_path / f"{top}.png")
        assert back.dtype == np.int64 and np.array_equal(back, labels.numpy())


def test_ctrl_c_keeps_what_is_finished_and_a_rerun_completes(folder, tmp_path, monkeypatch):
    out, calls, segment = tmp_path / "out", [], registry.segment

    def interrupt_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return segment(*args, **kwargs)

    monkeypatch.setattr(registry, "segment", interrupt_second)
    good = [str(folder / name) for name in GOOD]
    assert run(*good, "--out", str(out)) == 130
    assert sorted(p.name for p in out.iterdir()) == ["good.png.json", "good.png.labels.png", "good.png.overlay.png"]
    monkeypatch.setattr(registry, "segment", segment)
    assert run(*good, "--out", str(out)) == 0
    assert len(list(out.glob("*.json"))) == 3


def test_other_settings_unknown_names_and_clashing_names_are_refused(folder, tmp_path, capsys):
    out = tmp_path / "out"
    run(str(folder / "good.png"), "--out", str(out))
    with pytest.raises(SystemExit) as exit_info:
        run(str(folder / "good.png"), "--out", str(out), "--set", "size=16")
    assert exit_info.value.code == cli.EXIT_USAGE and "new --out" in capsys.readouterr().err
    for option, value, message in [("--method", "kmeans", "unknown method 'kmeans'; registered: diffseg"),
                                   ("--backbone", "sd9", "unknown backbone 'sd9'; known: sd14")]:
        with pytest.raises(SystemExit):
            cli.main(["segment", "--method", "randomwalk", "--backbone", "organism", option, value, str(folder),
                      "--out", str(tmp_path / "x"), "--no-progress"])
        assert message in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other/good.png").write_bytes((folder / "good.png").read_bytes())
    with pytest.raises(zsnb.ZsnbError, match="both be written as 'good.png'"):
        cli.find_images([folder, tmp_path / "other"])


def test_help_shows_a_worked_example_and_evaluate_is_delegated(capsys):
    env = {**os.environ, "PYTHONPATH": str(Path(zsnb.__file__).parents[1])}
    done = subprocess.run([sys.executable, "-m", "zsnb", "segment", "--help"], capture_output=True, text=True,
                          env=env, timeout=120, check=True)
    assert "python -m zsnb segment --method randomwalk --backbone vit-s zsnb/photos" in done.stdout
    assert "exit status" in done.stdout and "randomwalk" in done.stdout
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", "--help"])
    assert exit_info.value.code == 0 and "--dataset" in capsys.readouterr().out


def test_label_png_is_a_palette_png_a_viewer_shows_in_colour_and_reads_back_as_labels(tmp_path):
    labels = torch.arange(12 * 20).reshape(12, 20) % 7
    cli.save_labels(labels, tmp_path / "few.png")
    with Image.open(tmp_path / "few.png") as im:
        assert im.mode == "P"
        shown = np.asarray(im.convert("RGB")).reshape(-1, 3)
    colours = {tuple(c) for c in shown}
    assert len(colours) == 7 and colours == set(cli.SEGMENT_COLOURS[:7])  # one distinct colour per segment
    assert np.array_equal(cli.read_labels(tmp_path / "few.png"), labels.numpy())
    many = torch.arange(20 * 30).reshape(20, 30) % 300  # above 256 segments: 16-bit grey, still lossless
    cli.save_labels(many, tmp_path / "many.png")
    with Image.open(tmp_path / "many.png") as im:
        assert im.mode.startswith("I")
    assert np.array_equal(cli.read_labels(tmp_path / "many.png"), many.numpy())


def test_segment_colours_are_tab20_then_distinct():
    import matplotlib

    tab20 = [tuple(round(255 * v) for v in c) for c in matplotlib.colormaps["tab20"].colors]
    assert list(cli.SEGMENT_COLOURS[:20]) == tab20 == list(cli.TAB20)
    assert len(cli.SEGMENT_COLOURS) == 256 == len(set(cli.SEGMENT_COLOURS))


def test_overlay_outlines_sit_on_label_boundaries():
    labels = torch.zeros(24, 30, dtype=torch.long)
    labels[5:15, 8:20] = 1
    labels[18:, :] = 2
    image = torch.full((3, 24, 30), 0.5)
    out = cli.overlay(image, labels).astype(np.int64)
    lab = labels.numpy()
    edge = cli.boundaries(lab)
    tint = np.asarray(cli.SEGMENT_COLOURS)[lab] / 255
    blend = ((0.5 * 0.5 + 0.5 * tint) * 255).round()
    assert np.array_equal(out[~edge], blend[~edge])  # off the outline: the segment colour over the image
    assert np.array_equal(np.isin(out, (0, 255)).all(-1), edge)  # on it, only there: black or white
    padded = np.pad(lab, 1, mode="edge")
    other = ((padded[1:-1, 2:] != lab) | (padded[1:-1, :-2] != lab) | (padded[2:, 1:-1] != lab)
             | (padded[:-2, 1:-1] != lab))
    assert edge.any() and not (edge & ~other).any()  # every outline pixel touches another segment
    right, below = lab[:, :-1] != lab[:, 1:], lab[:-1, :] != lab[1:, :]
    assert (edge[:, :-1] | edge[:, 1:] | ~right).all() and (edge[:-1] | edge[1:] | ~below).all()  # none missed
    assert cli.outline_width(512, 512) == 1 and cli.outline_width(3000, 4000) == 8


def test_records_say_which_weights_dtype_device_and_sizes(folder, tmp_path):
    out = tmp_path / "out"
    run(str(folder / "good.png"), "--out", str(out), "--set", "size=64")
    record = json.loads((out / "good.png.json").read_text())
    assert record["weights_id"].startswith("organism sha256:") and record["dtype"] == "float64"
    assert record["device"] == "cpu" and record["size"] == 64 and record["official_size"] == 32
