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

`check(name, root)` (`python -m zsnb evaluate --check --dataset D --root R`) looks at a folder in seconds
before a long run: every listed image and label present, each pair the same size (read from the file headers),
the count against the published split (`SPLIT_SIZES`) and, for COCO-Stuff-27, the curated list's checksum.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from zsnb import world
from zsnb.errors import UnknownNameError, ZsnbError
from zsnb.images import center_crop

IGNORE: int = 255
CURATED_LIST: str = "curated/val2017/Coco164kFull_Stuff_Coarse_7.txt"  # COCO-Stuff-27's list, under ROOT
# Where the curated list comes from: IIC (Ji et al., ICCV 2019) published its curated COCO-Stuff id lists as one
# archive, named in github.com/xu-ji/IIC, datasets/README.txt; PiCIE and STEGO read the same curated/ folder, and
# DiffSeg's repository ships a copy of this one list (google/diffseg, data/coco/Coco164kFull_Stuff_Coarse_7.txt).
CURATED_SOURCE: str = ("https://www.robots.ox.ac.uk/~xuji/datasets/COCOStuff164kCurated.tar.gz (IIC's curated lists: "
                       "untar it, move its curated/ folder to ROOT), or the copy in github.com/google/diffseg, "
                       "data/coco/Coco164kFull_Stuff_Coarse_7.txt, saved as ROOT/" + CURATED_LIST)
# The list as DiffSeg's repository stores it (commit 77ea596): 2,175 ids in ascending order, one per line, LF
# endings with a final newline, 28,275 bytes. Its sha256 was computed over those bytes as read through a code
# index, not over a download of IIC's archive, whose copy may differ in line endings; `check` compares the
# checksum and, when it differs, the ids themselves (count, first, last).
CURATED_SHA256: str = "7c629734c88f1a74bba6311e01d4d9fe976df84f07cb4fc86452ce5116e51655"
CURATED_IDS: tuple[int, str, str] = (2175, "000000000139", "000000581615")  # count, first, last
# Images in the split each paper evaluates on (docs/reference.md#datasets); the world's: its held-out scenes.
SPLIT_SIZES: dict[str, int] = {"coco-stuff-27": 2175, "cityscapes-27": 500, "voc2012": 1449,
                               "world": len(world.EVAL_SEEDS)}

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
    ids = _ids_from(root / CURATED_LIST, name, root)
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


@dataclass
class CheckReport:
    """What `check` found: one line per thing looked at, the problems (each with how to fix it) and notes."""

    dataset: str
    root: Path | None
    found: list[str] = field(default_factory=list)  # what is there and fine
    notes: list[str] = field(default_factory=list)  # usable, but worth knowing (e.g. a subset of the split)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (what is wrong, how to fix it)

    @property
    def usable(self) -> bool:
        return not self.problems

    def text(self) -> str:
        where = f" at {self.root}" if self.root is not None else ""
        n = len(self.problems)
        state = "usable" if self.usable else f"NOT usable ({n} problem{'s' * (n > 1)})"
        lines = [f"{self.dataset}{where}: {state}"]
        lines += [f"  ok    {line}" for line in self.found]
        lines += [f"  note  {line}" for line in self.notes]
        for what, fix in self.problems:
            lines += [f"  FAIL  {what}", f"        fix: {fix}"]
        if self.problems:
            lines.append("expected layout under ROOT:\n    " + LAYOUTS[self.dataset].replace("\n", "\n    "))
        return "\n".join(lines)


_EXAMPLES = 3  # problems name at most this many files


def _n(count: int, noun: str) -> str:
    """"1 image", "2,175 images"."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _names(paths: Sequence[str]) -> str:
    return ", ".join(paths[:_EXAMPLES]) + (f" and {len(paths) - _EXAMPLES:,} more" if len(paths) > _EXAMPLES else "")


def _header(path: Path) -> tuple[tuple[int, int], str]:
    """(width, height) and mode of an image from its header only (PIL decodes no pixels until asked)."""
    with Image.open(path) as im:
        return im.size, im.mode


def _check_list(report: CheckReport, root: Path, rel: str, fix: str) -> tuple[str, ...] | None:
    """Read an id list under root; its count against the published split, duplicates, and (COCO) its checksum."""
    path = root / rel
    if not path.is_file():
        report.problems.append((f"{rel} is missing", fix))
        return None
    raw = path.read_bytes()
    ids = tuple(line.strip() for line in raw.decode(errors="replace").splitlines() if line.strip())
    expected = SPLIT_SIZES[report.dataset]
    if not ids:
        report.problems.append((f"{rel} lists no ids", fix))
        return None
    dupes = len(ids) - len(set(ids))
    line = f"{rel}: {len(ids):,} ids, {ids[0]} .. {ids[-1]}"
    if rel == CURATED_LIST:
        digest = hashlib.sha256(raw).hexdigest()
        same_ids = (len(ids), ids[0], ids[-1]) == CURATED_IDS
        if digest == CURATED_SHA256:
            line += f"; sha256 {digest[:12]}.., the list as published (DiffSeg's copy)"
        elif same_ids and len(set(ids)) == len(ids):
            line += f"; sha256 {digest[:12]}.. differs from DiffSeg's copy (line endings?), same count and end ids"
            report.notes.append(f"{rel}: not byte-identical to the copy zsnb records ({CURATED_SHA256[:12]}..); its "
                                "count and first and last ids agree, so it is likely the same list")
        else:
            report.notes.append(f"{rel} is not the published curated list (sha256 {digest[:12]}.., expected "
                                f"{CURATED_SHA256[:12]}..: {CURATED_IDS[0]:,} ids, {CURATED_IDS[1]} .. "
                                f"{CURATED_IDS[2]}); for the papers' split get {CURATED_SOURCE}")
    report.found.append(line)
    if dupes:
        report.problems.append((f"{rel} repeats {dupes:,} ids", f"remove the repeated lines, or get it again: {fix}"))
    if len(ids) != expected:
        report.notes.append(f"{len(ids):,} ids, but the split the papers evaluate on has {expected:,}: results on "
                            "this folder are labelled a subset and never set beside a published number")
    return ids


def _check_pairs(report: CheckReport, root: Path, pairs: Sequence[tuple[str, Path, Path]], fixes: tuple[str, str]
                 ) -> None:
    """Every (item, image, label) present and readable, labels single-channel, each pair of the same size."""
    rel = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    no_image = [rel(i) for _, i, _ in pairs if not i.is_file()]
    no_label = [rel(lab) for _, _, lab in pairs if not lab.is_file()]
    for what, missing, fix in (("images", no_image, fixes[0]), ("label maps", no_label, fixes[1])):
        if missing:
            report.problems.append((f"{len(missing):,} of {len(pairs):,} {what} missing: {_names(missing)}", fix))
    unreadable, colour, unequal, checked = [], [], [], 0
    for item, image, label in pairs:
        if not (image.is_file() and label.is_file()):
            continue
        try:
            (size, _), (label_size, mode) = _header(image), _header(label)
        except (OSError, SyntaxError) as err:
            unreadable.append(f"{item} ({type(err).__name__})")
            continue
        checked += 1
        if mode not in ("L", "P", "I", "I;16"):
            colour.append(f"{rel(label)} ({mode})")
        if size != label_size:
            unequal.append(f"{item}: image {size[0]}x{size[1]}, label {label_size[0]}x{label_size[1]}")
    if unreadable:
        report.problems.append((f"{len(unreadable):,} files whose header cannot be read (corrupt or not images): "
                                f"{_names(unreadable)}", "re-extract them from the original archive"))
    if colour:
        report.problems.append((f"{len(colour):,} label maps that are not single-channel: {_names(colour)}",
                                "use the dataset's own label PNGs (class ids, one channel), not colour renderings"))
    if unequal:
        report.problems.append((f"{_n(len(unequal), 'image/label pair')} of different sizes: {_names(unequal)}",
                                "image and label must be the same picture at the same size; re-extract both from "
                                "the original archives (resized copies do not score)"))
    if checked:
        report.found.append(f"{_n(checked, 'image/label pair')} present and readable, labels single-channel, "
                            f"{checked - len(unequal):,} of them the same size (headers read, no pixels decoded)")


def check(name: str, root: str | Path | None = None) -> CheckReport:
    """Look at a dataset folder before a long run, in seconds: the files `load_dataset(name, root)` will read,
    each image/label pair's size from the headers, the count against SPLIT_SIZES, the curated list's checksum."""
    if name == "world":
        report = CheckReport(name, None)
        report.found.append(f"no files needed: {SPLIT_SIZES['world']:,} held-out scenes drawn from world.EVAL_SEEDS")
        return report
    if name not in DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r}; known: {sorted([*DATASETS, 'world'])}.")
    if root is None:
        raise ZsnbError(f"--check --dataset {name} needs --root, the folder laid out as:\n{LAYOUTS[name]}")
    root = Path(root)
    report = CheckReport(name, root)
    if not root.is_dir():
        report.problems.append((f"{root} is not a folder", "give --root the folder that holds the layout below"))
        return report
    if name == "coco-stuff-27":
        ids = _check_list(report, root, CURATED_LIST, f"download {CURATED_SOURCE}")
        pairs = [(i, root / f"images/val2017/{i}.jpg", root / f"annotations/val2017/{i}.png") for i in ids or ()]
        fixes = ("unzip val2017.zip (images.cocodataset.org/zips/val2017.zip) into ROOT/images/",
                 "unzip stuffthingmaps_trainval2017.zip (github.com/nightrome/cocostuff) into ROOT/annotations/")
    elif name == "voc2012":
        ids = _check_list(report, root, "ImageSets/Segmentation/val.txt",
                          "extract VOCtrainval_11-May-2012.tar and give its VOCdevkit/VOC2012 folder as ROOT")
        pairs = [(i, root / f"JPEGImages/{i}.jpg", root / f"SegmentationClass/{i}.png") for i in ids or ()]
        fixes = ("extract VOCtrainval_11-May-2012.tar; ROOT is its VOCdevkit/VOC2012 folder",) * 2
    else:  # cityscapes-27: the val images found are the list
        folder = root / "leftImg8bit/val"
        found = sorted(folder.glob("*/*_leftImg8bit.png")) if folder.is_dir() else []
        if not found:
            report.problems.append((f"no leftImg8bit/val/<city>/*_leftImg8bit.png under {root}",
                                    "unzip leftImg8bit_trainvaltest.zip (cityscapes-dataset.com) into ROOT"))
        else:
            cities = len({p.parent for p in found})
            where = "1 city" if cities == 1 else f"{cities} cities"
            report.found.append(f"leftImg8bit/val: {_n(len(found), 'image')} in {where}")
            if len(found) != SPLIT_SIZES[name]:
                report.notes.append(f"{len(found):,} images, but the split the papers evaluate on has "
                                    f"{SPLIT_SIZES[name]:,}: results on this folder are labelled a subset and never "
                                    "set beside a published number")
        ids = [str(p.relative_to(folder))[: -len("_leftImg8bit.png")] for p in found]
        pairs = [(i, folder / f"{i}_leftImg8bit.png", root / f"gtFine/val/{i}_gtFine_labelIds.png") for i in ids]
        fixes = ("unzip leftImg8bit_trainvaltest.zip into ROOT",
                 "unzip gtFine_trainvaltest.zip into ROOT (the *_gtFine_labelIds.png files)")
    if pairs:
        _check_pairs(report, root, pairs, fixes)
    return report


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
