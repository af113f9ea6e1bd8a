"""Datasets: the documented layouts read back with the right label mappings; clear errors otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from layouts import make_cityscapes, make_coco, make_voc, save

from zsnb import data
from zsnb.errors import UnknownNameError, ZsnbError


def test_coco_fine_to_27_covers_every_fine_class_once():
    assert len(data.COCO_FINE) == 182 and len(set(data.COCO_FINE)) == 182
    members = [m for ms in data.COCO_COARSE.values() for m in ms]
    assert len(data.COCO_COARSE) == 27 and sorted(members) == sorted(data.COCO_FINE)
    assert data.COCO_LUT[0] == list(data.COCO_COARSE).index("person")
    assert data.COCO_LUT[181] == list(data.COCO_COARSE).index("solid")  # wood
    assert data.COCO_LUT[255] == data.IGNORE


def test_coco_reads_the_curated_layout(tmp_path):
    ds = data.load_dataset("coco-stuff-27", make_coco(tmp_path, ids=("a", "b")))
    assert len(ds) == 2 and ds.n_class == 27 and ds.background is None
    s = ds[1]
    assert s.name == "b" and s.image.shape == (3, 40, 60) and abs(float(s.image.mean()) - 128 / 255) < 0.01
    person, solid = list(data.COCO_COARSE).index("person"), list(data.COCO_COARSE).index("solid")
    assert s.label[1, 0] == person and s.label[1, -1] == solid and (s.label[0] == data.IGNORE).all()


def test_cityscapes_maps_label_ids_7_to_33_onto_27_classes(tmp_path):
    ds = data.load_dataset("cityscapes-27", make_cityscapes(tmp_path))
    s = ds[0]
    assert ds.items == ("aachen/aachen_000000_000019",) and ds.n_class == 27
    assert s.label[1, 0] == 0 and s.label[1, -1] == 26 and (s.label[0] == data.IGNORE).all()


def test_voc_void_becomes_background_and_background_is_matched_many_to_one(tmp_path):
    ds = data.load_dataset("voc2012", make_voc(tmp_path))
    s = ds[0]
    assert ds.n_class == 21 and ds.background == 0
    assert s.label[10, 10] == 8 and s.label[4, 10] == 0 and s.label[0, 0] == 0


def test_world_dataset_is_the_held_out_scenes():
    ds = data.load_dataset("world")
    assert ds.n_class is None and ds.items[0] == str(data.world.EVAL_SEEDS[0])
    s = ds[0]
    assert s.image.shape == (3, 32, 32) and s.parts is not None and s.label.shape == (32, 32)


def test_prepare_crops_the_centre_and_resizes_image_and_labels():
    label = np.zeros((40, 60), np.int64)
    label[:, :20] = 1  # left of the centre crop (columns 10..49): only 10 columns survive
    image = torch.rand(3, 40, 60)
    img, lab = data.prepare(data.Sample("x", image, label), image_size=80, label_size=20)
    assert img.shape == (3, 80, 80) and lab.shape == (20, 20)
    assert set(np.unique(lab)) == {0, 1} and (lab[:, :5] == 1).all() and (lab[:, 5:] == 0).all()
    _, lab39 = data.prepare(data.Sample("x", image, label), image_size=39, label_size=39, shrink=1)
    assert (lab39 == label[0:39, 10:49]).all()  # DiffCut's min side - 1 crop, no resize at 39


def test_prepare_passes_square_world_scenes_through():
    s = data.load_dataset("world")[0]
    img, lab = data.prepare(s, 32, 32, shrink=1)
    assert img is s.image and lab is s.label


def test_missing_root_and_unknown_names_say_what_to_do(tmp_path):
    with pytest.raises(ZsnbError, match="needs --root"):
        data.load_dataset("voc2012")
    with pytest.raises(ZsnbError, match="JPEGImages"):  # the layout is printed
        data.load_dataset("voc2012", tmp_path / "nowhere")
    with pytest.raises(UnknownNameError, match="cityscapes-27"):
        data.load_dataset("cityscapes")
    with pytest.raises(ZsnbError, match="Coco164kFull_Stuff_Coarse_7.txt"):
        data.load_dataset("coco-stuff-27", tmp_path)
    with pytest.raises(ZsnbError, match="no \\*_leftImg8bit.png"):
        (tmp_path / "leftImg8bit/val").mkdir(parents=True)
        data.load_dataset("cityscapes-27", tmp_path)


def test_missing_and_corrupt_files_are_named(tmp_path):
    root = make_coco(tmp_path, ids=("a", "b"))
    (root / "annotations/val2017/a.png").unlink()
    (root / "images/val2017/b.jpg").write_bytes(b"not a jpeg")
    ds = data.load_dataset("coco-stuff-27", root)
    with pytest.raises(ZsnbError, match="annotations/val2017/a.png does not exist"):
        ds[0]
    with pytest.raises(ZsnbError, match="b.jpg.*corrupt"):
        ds[1]


def test_label_that_does_not_match_its_image_is_refused(tmp_path):
    root = make_coco(tmp_path)
    save(root / "annotations/val2017/000000000139.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(ZsnbError, match="must match"):
        data.load_dataset("coco-stuff-27", root)[0]
    save(root / "annotations/val2017/000000000139.png", np.zeros((40, 60, 3), np.uint8))
    with pytest.raises(ZsnbError, match="single-channel"):
        data.load_dataset("coco-stuff-27", root)[0]


def test_roots_finds_dataset_subfolders(tmp_path):
    assert data.roots("") == {"world": None}
    (tmp_path / "voc2012").mkdir()
    assert data.roots(tmp_path) == {"voc2012": tmp_path / "voc2012"}
    with pytest.raises(ZsnbError, match="holds none of"):
        data.roots(tmp_path / "voc2012")


def test_check_compares_the_curated_list_with_the_published_one(tmp_path, monkeypatch):
    import hashlib

    root = make_coco(tmp_path, ids=("000000000139", "000000000724"))
    listed = (root / data.CURATED_LIST).read_bytes()
    monkeypatch.setattr(data, "CURATED_SHA256", hashlib.sha256(listed).hexdigest())
    monkeypatch.setattr(data, "CURATED_IDS", (2, "000000000139", "000000000724"))
    report = data.check("coco-stuff-27", root)
    assert report.usable and "the list as published" in report.text()
    (root / data.CURATED_LIST).write_bytes(listed.replace(b"\n", b"\r\n"))  # same ids, other line endings
    report = data.check("coco-stuff-27", root)
    assert report.usable and "likely the same list" in report.text()
    monkeypatch.setattr(data, "CURATED_IDS", (2175, "000000000139", "000000581615"))
    assert "not the published curated list" in data.check("coco-stuff-27", root).text()


def test_check_cityscapes_and_bad_roots(tmp_path):
    report = data.check("cityscapes-27", make_cityscapes(tmp_path / "city"))
    assert report.usable and "1 image in 1 city" in report.text() and "has 500" in report.text()
    (tmp_path / "city/gtFine/val/aachen/aachen_000000_000019_gtFine_labelIds.png").unlink()
    report = data.check("cityscapes-27", tmp_path / "city")
    assert not report.usable and "gtFine_trainvaltest.zip" in report.text()
    assert not data.check("voc2012", tmp_path / "nowhere").usable
    with pytest.raises(UnknownNameError):
        data.check("imagenet", tmp_path)
    with pytest.raises(ZsnbError, match="needs --root"):
        data.check("voc2012")
    assert data.check("world").usable
