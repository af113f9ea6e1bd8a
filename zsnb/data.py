"""Evaluation datasets: COCO-Stuff-27, Cityscapes-27, Pascal VOC 2012 and the organism's world.

Each real dataset reads the folder layout its own download unpacks to (`LAYOUTS`, also printed by any
error); nothing is downloaded. A sample is the image at its native size and a (H, W) int64 label map whose
unlabelled pixels are `IGNORE` (255). `prepare` applies the papers' preprocessing
(docs/reference.md#preprocessing-and-evaluation-size):

- DiffSeg: square centre crop of side min(h, w), image resized bilinearly to the backbone's input (512),
  labels by nearest neighbour to the evaluation size (512);
- DiffCut: square centre crop of side min(h, w) - 1, image to 1024, labels nearest to 128.

Label conventions: COCO-Stuff's stuffthingmaps hold fine ids 0..181 (COCO category id - 1), mapped to the
27 coarse classes of the curated split (12 thing + 15 stuff supercategories; only the grouping matters,
since matching is by Hungarian assignment); Cityscapes' labelIds 7..33 become 0..26, the rest is ignored;
VOC keeps its 21 classes (0 = background) and, as in DiffCut's conversion, the 255 void border becomes
background. World scenes are square already and their classes are the scene's own objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from zsnb import world
from zsnb.errors import UnknownNameError, ZsnbError
from zsnb.images import center_crop

IGNORE: int = 255

LAYOUTS: dict[str, str] = {
    "coco-stuff-27": (
        "ROOT/images/val2017/<id>.jpg                   COCO 2017 val images (cocodataset.org)\n"
        "ROOT/annotations/val2017/<id>.png              stuffthingmaps_trainval2017.zip "
        "(github.com/nightrome/cocostuff)\n"
        "ROOT/curated/val2017/Coco164kFull_Stuff_Coarse_7.txt   the curated 2,175-image list (IIC/PiCIE/STEGO)"),
    "cityscapes-27": (
        "ROOT/leftImg8bit/val/<city>/<name>_leftImg8bit.png   leftImg8bit_trainvaltest.zip (cityscapes-dataset.com)\n"
        "ROOT/gtFine/val/<city>/<name>_gtFine_labelIds.png    gtFine_trainvaltest.zip"),
    "voc2012": (
        "ROOT/JPEGImages/<id>.jpg                       VOCtrainval_11-May-2012.tar, folder VOCdevkit/VOC2012\n"
        "ROOT/SegmentationClass/<id>.png                palette PNGs, 0..20 and 255 = void\n"
        "ROOT/ImageSets/Segmentation/val.txt            the 1,449 validation ids"),
    "world": "no files: scenes are drawn from world.EVAL_SEEDS (ROOT is ignored)",
}

# COCO-Stuff fine classes in id order (stuffthingmaps value = index; COCO ids 1..91 then stuff 92..182).
COCO_FINE: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep",
    "cow", "elephant", "bear", "zebra", "giraffe", "hat", "backpack", "umbrella", "shoe", "eye glasses",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
    "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "plate", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
    "donut", "cake", "chair", "couch", "potted plant", "bed", "mirror", "dining table", "window", "desk",
    "toilet", "door", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven",
    "toaster", "sink", "refrigerator", "blender", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush", "hair brush",
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage", "cardboard", "carpet",
    "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter", "cupboard", "curtain",
    "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble", "floor-other", "floor-stone", "floor-tile",
    "floor-wood", "flower", "fog", "food-other", "fruit", "furniture-other", "grass", "gravel", "ground-other",
    "hill", "house", "leaves", "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin",
    "net", "paper", "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield", "railing",
    "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf", "sky-other",
    "skyscraper", "snow", "solid-other", "stairs", "stone", "straw", "structural-other", "table", "tent",
    "textile-other", "towel", "tree", "vegetable", "wall-brick", "wall-concrete", "wall-other", "wall-panel",
    "wall-stone", "wall-tile", "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood",
)
# The 27 coarse classes (COCO-Stuff's supercategories; things first, as in the curated split) and members.
COCO_COARSE: dict[str, tuple[str, ...]] = {
    "electronic": ("tv", "laptop", "mouse", "remote", "keyboard", "cell phone"),
    "appliance": ("microwave", "oven", "toaster", "sink", "refrigerator", "blender"),
    "food-things": ("banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut",
                    "cake"),
    "furniture-things": ("chair", "couch", "potted plant", "bed", "mirror", "dining table", "window", "desk",
                         "toilet", "door"),
    "indoor": ("book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush", "hair brush"),
    "kitchen": ("bottle", "plate", "wine glass", "cup", "fork", "knife", "spoon", "bowl"),
    "accessory": ("hat", "backpack", "umbrella", "shoe", "eye glasses", "handbag", "tie", "suitcase"),
    "animal": ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"),
    "outdoor": ("traffic light", "fire hydrant", "street sign", "stop sign", "parking meter", "bench"),
    "person": ("person",),
    "sports": ("frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
               "skateboard", "surfboard", "tennis racket"),
    "vehicle": ("bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat"),
    "ceiling": ("ceiling-tile", "ceiling-other"),
    "floor": ("carpet", "floor-tile", "floor-wood", "floor-marble", "floor-stone", "floor-other"),
    "food-stuff": ("fruit", "salad", "vegetable", "food-other"),
    "furniture-stuff": ("door-stuff", "desk-stuff", "table", "shelf", "cabinet", "cupboard", "mirror-stuff",
                        "counter", "light", "stairs", "furniture-other"),
    "raw material": ("cardboard", "paper", "plastic", "metal"),
    "textile": ("rug", "mat", "towel", "napkin", "clothes", "cloth", "curtain", "blanket", "pillow", "banner",
                "textile-other"),
    "wall": ("wall-tile", "wall-panel", "wall-wood", "wall-brick", "wall-stone", "wall-concrete", "wall-other"),
    "window": ("window-blind", "window-other"),
    "building": ("house", "skyscraper", "bridge", "tent", "roof", "building-other"),
    "ground": ("sand", "snow", "dirt", "mud", "gravel", "road", "pavement", "railroad", "platform",
               "playingfield", "ground-other"),
    "plant": ("grass", "tree", "bush", "leaves", "flower", "branch", "moss", "straw", "plant-other"),
    "sky": ("clouds", "sky-other"),
    "solid": ("wood", "rock", "stone", "mountain", "hill", "solid-other"),
    "structural": ("fence", "cage", "net", "railing", "structural-other"),
    "water": ("fog", "river", "sea", "waterdrops", "water-other"),
}
CITYSCAPES_27: tuple[str, ...] = (
    "road", "sidewalk", "parking", "rail track", "building", "wall", "fence", "guard rail", "bridge", "tunnel",
    "pole", "polegroup", "traffic light", "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
    "truck", "bus", "caravan", "trailer", "train", "motorcycle", "bicycle",
)  # labelIds 7..33 in order
VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


def _lut(pairs: dict[int, int]) -> np.ndarray:
    """A 256-entry uint8 -> class lookup table; ids not in `pairs` map to IGNORE."""
    lut = np.full(256, IGNORE, dtype=np.int64)
    for src, dst in pairs.items():
        lut[src] = dst
    return lut


_coarse_of = {fine: c for c, members in enumerate(COCO_COARSE.values()) for fine in members}
COCO_LUT: np.ndarray = _lut({i: _coarse_of[name] for i, name in enumerate(COCO_FINE)})
CITYSCAPES_LUT: np.ndarray = _lut({7 + i: i for i in range(len(CITYSCAPES_27))})
VOC_LUT: np.ndarray = _lut({**{i: i for i in range(len(VOC_CLASSES))}, 255: 0})


@dataclass(frozen=True)
class Sample:
    """One evaluation item: image (3, H, W) float32 in [0, 1]; label (H, W) int64 (IGNORE = unlabelled)."""

    name: str
    image: torch.Tensor
    label: np.ndarray
    parts: np.ndarray | None = None  # world scenes only: the part-level ground truth


@dataclass(frozen=True)
class Dataset:
    """An indexable evaluation set; n_class is None for the world (each scene has its own objects)."""

    name: str
    items: tuple[str, ...]
    load: Callable[[str], Sample]
    n_class: int | None
    class_names: tuple[str, ...]
    background: int | None = None  # class matched many-to-one (DiffCut's protocol), if any

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample:
        return self.load(self.items[i])


def _missing(name: str, root: Path, what: Path) -> ZsnbError:
    """The error for a missing file or folder, naming it and the expected layout."""
    return ZsnbError(f"{name}: {what} does not exist. Expected layout under --root {root}:\n{LAYOUTS[name]}")


def _read(path: Path, mode: str | None, dataset: str, root: Path) -> np.ndarray:
    """Read an image file as an array (converted to `mode` if given); clear errors for missing or corrupt files."""
    if not path.is_file():
        raise _missing(dataset, root, path)
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert(mode) if mode else im)
    except (OSError, SyntaxError) as e:  # PIL reports truncated or unreadable files as OSError
        raise ZsnbError(f"{dataset}: cannot read {path} ({e}); the file is corrupt or not an image. "
                        "Re-extract it from the original archive.") from e


def _labelled(dataset: str, root: Path, item: str, image: Path, label: Path, lut: np.ndarray) -> Sample:
    """Sample `item` from an RGB image file and a label PNG mapped through `lut`."""
    rgb = _read(image, "RGB", dataset, root)
    raw = _read(label, None, dataset, root)
    if raw.ndim != 2:
        raise ZsnbError(f"{dataset}: {label} has shape {raw.shape}; expected a single-channel label PNG.")
    if raw.shape != rgb.shape[:2]:
        raise ZsnbError(f"{dataset}: {label} is {raw.shape[0]}x{raw.shape[1]} but {image} is "
                        f"{rgb.shape[0]}x{rgb.shape[1]}; image and label must match.")
    tensor = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() / 255  # a copy: PIL arrays are read-only
    return Sample(item, tensor, lut[raw.astype(np.int64)])


def _ids_from(list_file: Path, dataset: str, root: Path) -> tuple[str, ...]:
    """Non-empty, stripped lines of an image-list file."""
    if not list_file.is_file():
        raise _missing(dataset, root, list_file)
    return tuple(line.strip() for line in list_file.read_text().splitlines() if line.strip())


def coco_stuff27(root: str | Path) -> Dataset:
    """COCO-Stuff-27 on the curated 2,175 val2017 images (DiffSeg and DiffCut's split)."""
    root, name = Path(root), "coco-stuff-27"
    ids = _ids_from(root / "curated/val2017/Coco164kFull_Stuff_Coarse_7.txt", name, root)
    return Dataset(name, ids, lambda i: _labelled(name, root, i, root / f"images/val2017/{i}.jpg",
                                                    root / f"annotations/val2017/{i}.png", COCO_LUT),
                   len(COCO_COARSE), tuple(COCO_COARSE))


def cityscapes27(root: str | Path) -> Dataset:
    """Cityscapes val (500 images) with the 27 classes of labelIds 7..33."""
    root, name = Path(root), "cityscapes-27"
    folder = root / "leftImg8bit/val"
    if not folder.is_dir():
        raise _missing(name, root, folder)
    ids = tuple(sorted(str(p.relative_to(folder))[: -len("_leftImg8bit.png")]
                       for p in folder.glob("*/*_leftImg8bit.png")))
    if not ids:
        raise ZsnbError(f"{name}: no *_leftImg8bit.png files under {folder}. Expected layout:\n{LAYOUTS[name]}")
    return Dataset(name, ids, lambda i: _labelled(name, root, i, folder / f"{i}_leftImg8bit.png",
                                                    root / f"gtFine/val/{i}_gtFine_labelIds.png", CITYSCAPES_LUT),
                   len(CITYSCAPES_27), CITYSCAPES_27)


def voc2012(root: str | Path) -> Dataset:
    """Pascal VOC 2012 segmentation val (1,449 images), 21 classes, background matched many-to-one."""
    root, name = Path(root), "voc2012"
    ids = _ids_from(root / "ImageSets/Segmentation/val.txt", name, root)
    return Dataset(name, ids, lambda i: _labelled(name, root, i, root / f"JPEGImages/{i}.jpg",
                                                    root / f"SegmentationClass/{i}.png", VOC_LUT),
                   len(VOC_CLASSES), VOC_CLASSES, background=0)


def world_scenes(n: int = len(world.EVAL_SEEDS), size: int = world.DEFAULT_SIZE) -> Dataset:
    """The first n held-out world scenes (world.EVAL_SEEDS); labels are objects, parts ride along."""
    if not 1 <= n <= len(world.EVAL_SEEDS):
        raise ZsnbError(f"n={n}: the world has {len(world.EVAL_SEEDS)} evaluation scenes; use 1 to that.")

    def load(item: str) -> Sample:
        s = world.scene(int(item), size)
        return Sample(item, torch.from_numpy(s.image).permute(2, 0, 1), s.objects, s.parts)

    return Dataset("world", tuple(str(s) for s in world.EVAL_SEEDS[:n]), load, None, ())


DATASETS: dict[str, Callable[[str | Path], Dataset]] = {
    "coco-stuff-27": coco_stuff27, "cityscapes-27": cityscapes27, "voc2012": voc2012,
}


def load_dataset(name: str, root: str | Path | None = None) -> Dataset:
    """A dataset by name (DATASETS or "world"); real datasets need `root` in the layout of LAYOUTS[name]."""
    if name == "world":
        return world_scenes()
    if name not in DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r}; known: {sorted([*DATASETS, 'world'])}.")
    if root is None:
        raise ZsnbError(f"{name} needs --root, the folder laid out as:\n{LAYOUTS[name]}")
    if not Path(root).is_dir():
        raise _missing(name, Path(root), Path(root))
    return DATASETS[name](root)


def roots(data_root: str | Path | None) -> dict[str, Path | None]:
    """{dataset: folder} for the DATASETS found as subfolders of data_root; empty data_root: {"world": None}."""
    if not data_root:
        return {"world": None}
    base = Path(data_root)
    if not base.is_dir():
        raise ZsnbError(f"data_root {base} does not exist; give a folder holding any of {sorted(DATASETS)}.")
    found = {name: base / name for name in DATASETS if (base / name).is_dir()}
    if not found:
        raise ZsnbError(f"data_root {base} holds none of {sorted(DATASETS)}; put each dataset in a subfolder "
                        "of that name, laid out as zsnb.data.LAYOUTS describes.")
    return found


def prepare(sample: Sample, image_size: int, label_size: int, shrink: int = 0
            ) -> tuple[torch.Tensor, np.ndarray]:
    """Centre-crop a square of side min(h, w) - shrink; image bilinear to image_size, label nearest to label_size.

    Returns ((3, image_size, image_size) in [0, 1], (label_size, label_size) int64). A sample that is
    square at both sizes already (world scenes) passes through unchanged.
    """
    _, h, w = sample.image.shape
    if h == w == image_size == label_size:
        return sample.image, sample.label
    image = center_crop(sample.image, shrink)
    label = center_crop(torch.from_numpy(sample.label), shrink)
    image = F.interpolate(image[None], size=(image_size, image_size), mode="bilinear", align_corners=False)[0]
    label = F.interpolate(label[None, None].float(), size=(label_size, label_size), mode="nearest-exact")[0, 0]
    return image.clamp(0, 1), label.long().numpy()
