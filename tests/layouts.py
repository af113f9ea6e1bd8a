"""Tiny dataset trees in the documented layouts (zsnb.data.LAYOUTS), for the data and evaluate tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def save(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)


def make_coco(root: Path, ids=("000000000139",), h: int = 40, w: int = 60) -> Path:
    """A COCO-Stuff-27 tree: left half person (fine 0), right half wood (fine 181), one unlabelled row."""
    for i in ids:
        save(root / f"images/val2017/{i}.jpg", np.full((h, w, 3), 128, np.uint8))
        label = np.zeros((h, w), np.uint8)
        label[:, w // 2 :] = 181
        label[0] = 255
        save(root / f"annotations/val2017/{i}.png", label)
    (root / "curated/val2017").mkdir(parents=True, exist_ok=True)
    (root / "curated/val2017/Coco164kFull_Stuff_Coarse_7.txt").write_text("\n".join(ids) + "\n")
    return root


def make_cityscapes(root: Path) -> Path:
    """One Cityscapes image: labelIds 7 (road), 33 (bicycle) and 0 (unlabelled)."""
    save(root / "leftImg8bit/val/aachen/aachen_000000_000019_leftImg8bit.png", np.zeros((16, 32, 3), np.uint8))
    label = np.full((16, 32), 7, np.uint8)
    label[:, 16:] = 33
    label[0] = 0
    save(root / "gtFine/val/aachen/aachen_000000_000019_gtFine_labelIds.png", label)
    return root


def make_voc(root: Path) -> Path:
    """One VOC image as a palette PNG: background, a cat (8) and the 255 void border."""
    save(root / "JPEGImages/2007_000033.jpg", np.zeros((20, 24, 3), np.uint8))
    label = np.zeros((20, 24), np.uint8)
    label[5:15, 5:15] = 8
    label[4, 4:16] = 255
    im = Image.fromarray(label, "P")
    im.putpalette([0, 0, 0] * 256)
    (root / "SegmentationClass").mkdir(parents=True)
    im.save(root / "SegmentationClass/2007_000033.png")
    (root / "ImageSets/Segmentation").mkdir(parents=True)
    (root / "ImageSets/Segmentation/val.txt").write_text("2007_000033\n")
    return root
