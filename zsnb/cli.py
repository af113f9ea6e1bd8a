"""The command line: `python -m zsnb segment ...` segments a user's own images; `python -m zsnb evaluate ...`
runs `zsnb.evaluate`. See `python -m zsnb segment --help`.

For each image, OUT holds <name>.labels.png (the label map, lossless: uint8, or uint16 above 255 segments),
<name>.overlay.png (segments over the image) and <name>.json (the record), where <name> is the image's path
relative to the folder it was found in (or its file name when given directly), extension kept. Every file is
written to a temporary name and renamed, the record last: a record marks a finished image, so a rerun skips
it and an interrupted run (Ctrl-C) loses only the image in flight.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from zsnb import registry
from zsnb.backbones import KNOWN_NAMES, family_of, load_backbone
from zsnb.errors import ImageError, ZsnbError
from zsnb.images import image_tensor
from zsnb.parameters import parse

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
OVERLAY_ALPHA: float = 0.5  # share of the segment colour in the overlay
SEGMENT_CMAP: str = "tab20"  # the notebooks' segment colours (zsnb.viz), without importing pyplot
EXIT_FAILED: int = 1  # some images could not be read
EXIT_USAGE: int = 2  # bad options, unknown method or backbone (argparse's status)
EXAMPLE = """worked example (offline, on a CPU): the ViT segments the three photos shipped in zsnb/photos,
  python -m zsnb segment --method randomwalk --backbone vit-s zsnb/photos --out runs/photos
writing runs/photos/astronaut.jpg.labels.png (labels 0..k-1, one per pixel), astronaut.jpg.overlay.png and
astronaut.jpg.json (method, backbone, weights, parameters, segments, seconds), the same for chelsea.jpg and
coffee.jpg; running it again skips all three. More:
  python -m zsnb segment --method diffseg --backbone organism my_photos/ cat.png --out runs/organism
  python -m zsnb segment --method diffcut --backbone ssd-1b --device cuda my_photos/ --out runs/diffcut
  python -m zsnb segment --method diffseg --backbone sd15 --weights random --set size=64 cat.png --out runs/random
  python -m zsnb segment --method diffcut --backbone organism --set tau=0.6 --show-params
Folders are searched recursively for {exts}; other files there are ignored.

exit status: 0 all images segmented (or skipped as done); 1 some files could not be read (named at the end,
the others are done); 2 bad options, an unknown method or backbone, or OUT holding another run's results;
130 interrupted (what was finished is kept).
methods: {methods}"""


def find_images(paths: Sequence[str | Path]) -> dict[str, Path]:
    """Files and folders -> {output name: image path}; folders are searched recursively for IMAGE_EXTENSIONS."""
    found: dict[str, Path] = {}
    for given in map(Path, paths):
        if given.is_dir():
            files = sorted(f for f in given.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            pairs = [(f.relative_to(given).as_posix(), f) for f in files]
        else:  # a missing or non-image file is reported with the failures, not refused here
            pairs = [(given.name, given)]
        for name, path in pairs:
            if name in found and found[name].resolve() != path.resolve():
                raise ZsnbError(f"{found[name]} and {path} would both be written as {name!r}; segment them into "
                                "different --out folders.")
            found[name] = path
    return found


def _write_atomic(path: Path, write: Any) -> None:
    """Call write(temporary path), then rename it to `path`: a reader never sees a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def save_labels(labels: torch.Tensor, path: Path) -> None:
    """(H, W) labels 0..k-1 -> lossless PNG: 8-bit, or 16-bit above 255 labels."""
    arr = labels.cpu().numpy()
    if arr.min() < 0 or arr.max() > np.iinfo(np.uint16).max:
        raise ZsnbError(f"labels span {arr.min()}..{arr.max()}; a PNG label map holds 0..65535.")
    dtype = np.uint8 if arr.max() <= np.iinfo(np.uint8).max else np.uint16
    _write_atomic(path, lambda tmp: Image.fromarray(arr.astype(dtype)).save(tmp, format="PNG"))


def read_labels(path: str | Path) -> np.ndarray:
    """A label PNG written by `save_labels` -> (H, W) int64 labels."""
    with Image.open(path) as im:
        return np.asarray(im).astype(np.int64)


def overlay(image: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """(3, H, W) image in [0, 1], (H, W) labels -> (H, W, 3) uint8: segment colours blended over the image."""
    colours = matplotlib.colormaps[SEGMENT_CMAP].colors  # 20 RGB triples in [0, 1]
    tint = np.asarray(colours)[labels.cpu().numpy() % len(colours)]  # (H, W, 3)
    mixed = (1 - OVERLAY_ALPHA) * image.permute(1, 2, 0).numpy() + OVERLAY_ALPHA * tint
    return (mixed * 255).round().clip(0, 255).astype(np.uint8)


def _settings(method: str, backbone: str, weights: str, params: dict[str, Any]) -> dict[str, Any]:
    """What a record must match for a rerun to skip its image (parameters as JSON stores them)."""
    return {"method": method, "backbone": backbone, "weights": weights,
            "parameters": json.loads(json.dumps(params, default=list))}


def finished(record_path: Path, settings: dict[str, Any]) -> bool:
    """True if the record exists and was made with `settings`; ZsnbError if it was made with others."""
    if not record_path.exists():
        return False
    record = json.loads(record_path.read_text())
    if {k: record.get(k) for k in settings} != settings:
        raise ZsnbError(f"{record_path} was made with other settings ({record.get('method')} on "
                        f"{record.get('backbone')}, {record.get('weights')} weights, parameters "
                        f"{record.get('parameters')}); pass a new --out or delete that folder.")
    return True


def segment_one(path: Path, base: Path, backbone: Any, settings: dict[str, Any], overrides: dict[str, Any]) -> int:
    """Segment one image file and write its label map, overlay and record (last); returns the segment count."""
    image = image_tensor(path)  # ImageError for an unreadable or corrupt file
    start = time.perf_counter()
    labels = registry.segment(settings["method"], backbone, image, **overrides)
    seconds = time.perf_counter() - start
    base.parent.mkdir(parents=True, exist_ok=True)
    save_labels(labels, base.with_name(base.name + ".labels.png"))
    _write_atomic(base.with_name(base.name + ".overlay.png"),
                  lambda tmp: Image.fromarray(overlay(image, labels)).save(tmp, format="PNG"))
    segments = int(labels.unique().numel())
    record = {**settings, "image": str(path), "height": int(labels.shape[0]), "width": int(labels.shape[1]),
              "segments": segments, "seconds": round(seconds, 4)}
    _write_atomic(base.with_name(base.name + ".json"), lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    return segments


def segment_paths(method: str, backbone: str, paths: Sequence[str | Path], out: str | Path, weights: str = "pretrained",
                  device: str | None = None, overrides: dict[str, Any] | None = None, progress: bool = True,
                  dtype: str | None = None) -> dict[str, Any]:
    """Segment every image in `paths` into `out` (see the module docstring) -> {done, skipped, failed: {path: why}}."""
    images = find_images(paths)
    overrides = overrides or {}
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    registry.family_params(method, family_of(backbone), **overrides)  # bad names or values fail before loading
    model = load_backbone(backbone, device=device, dtype=dtype, weights=weights, progress=progress)
    settings = _settings(method, backbone, weights, registry.params(method, model, **overrides).record.as_dict())
    out = Path(out)
    done, skipped, failed = 0, 0, {}
    bar = tqdm(images.items(), desc=f"{method} on {backbone}", unit="image", disable=not progress)
    for name, path in bar:
        base = out / name
        if finished(base.with_name(base.name + ".json"), settings):
            skipped += 1
            continue
        try:
            segment_one(path, base, model, settings, overrides)
            done += 1
        except (ImageError, OSError) as err:  # unreadable or corrupt: named at the end, the batch goes on
            failed[str(path)] = str(err)
            bar.set_postfix(failed=len(failed))
    return {"done": done, "skipped": skipped, "failed": failed}


def _options(parser: argparse.ArgumentParser, backbone_default: str | None) -> None:
    """The options `segment` and `evaluate` share."""
    parser.add_argument("--method", required=True, help="a registered method: " + ", ".join(registry.REGISTRY))
    parser.add_argument("--backbone", required=backbone_default is None, default=backbone_default,
                        help=", ".join(KNOWN_NAMES) + " or a local diffusers folder"
                        + (f" (default: {backbone_default})" if backbone_default else ""))
    parser.add_argument("--weights", choices=["pretrained", "random"], default="pretrained",
                        help="random: the backbone's architecture with seeded random weights, offline")
    parser.add_argument("--device", help="default: cuda if available (this process's GPU under accelerate), else cpu")
    parser.add_argument("--dtype", choices=["float16", "bfloat16", "float32", "float64"],
                        help="default: float16 on a GPU, float32 on the CPU (float64 for the organism)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="assignments",
                        help="set one of the method's parameters, e.g. --set tau=0.6 --set size=256 (repeatable; "
                        "--show-params lists the keys, their types and values)")
    parser.add_argument("--show-params", action="store_true",
                        help="print the method's resolved parameters, each with where its value came from, and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The `python -m zsnb` parser and its subcommands' parsers by name."""
    from zsnb import data, evaluate  # the dataset names and layouts, the runner's description

    parser = argparse.ArgumentParser(prog="python -m zsnb", description="zsnb from the command line.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{segment,evaluate}")
    seg = commands.add_parser(
        "segment", help="segment your own images or folders of images",
        description="Segment images with a registered method; writes a label map, an overlay and a JSON record "
                    "per image.", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLE.format(exts=" ".join(IMAGE_EXTENSIONS), methods=", ".join(registry.REGISTRY)))
    seg.add_argument("paths", nargs="*", metavar="PATH", help="image files or folders (searched recursively)")
    seg.add_argument("--out", type=Path, help="output folder; rerunning into it skips finished images")
    _options(seg, None)
    ev = commands.add_parser(
        "evaluate", help="evaluate a method on a dataset under the papers' protocol",
        description=evaluate.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="dataset layouts (--root):\n" + "\n".join(
            f"  {k}:\n    " + v.replace("\n", "\n    ") for k, v in data.LAYOUTS.items()))
    ev.add_argument("--dataset", default="world", choices=[*data.DATASETS, "world"])
    ev.add_argument("--root", help="dataset folder (layouts below); not needed for the world")
    ev.add_argument("--out", type=Path, help="results folder; rerunning into it resumes")
    ev.add_argument("--limit", type=int, help="evaluate only the first N images")
    _options(ev, "organism")
    return parser, {"segment": seg, "evaluate": ev}


def _overrides(parser: argparse.ArgumentParser, method: str, assignments: Sequence[str]) -> dict[str, Any]:
    """--set KEY=VALUE strings -> {key: value} typed by the method's record; parser.error on a bad one."""
    record = registry.get(method).record
    out = {}
    for text in assignments:
        key, sep, value = text.partition("=")
        if not sep:
            parser.error(f"--set {text}: write KEY=VALUE, e.g. --set tau=0.6.")
        try:
            out[key.strip()] = parse(record, key.strip(), value)
        except ZsnbError as err:
            parser.error(str(err))
    return out


def _show_params(method: str, backbone: str, dataset: str | None, overrides: dict[str, Any]) -> None:
    """Print the resolved record with the source of every value."""
    family = family_of(backbone)
    resolved = registry.family_params(method, family, dataset, **overrides)
    where = f"{method} on {backbone} (family {family})" + (f", dataset {dataset}" if dataset else "")
    print(f"{where}: {type(resolved.record).__name__}\n{resolved.table()}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run `python -m zsnb ...`; returns the exit status (see EXAMPLE)."""
    parser, commands = _parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    sub = commands[args.command]
    dataset = getattr(args, "dataset", None)
    try:
        overrides = _overrides(sub, args.method, args.assignments)
        if args.show_params:
            _show_params(args.method, args.backbone, None if dataset == "world" else dataset, overrides)
            return 0
        if args.out is None or (args.command == "segment" and not args.paths):
            sub.error("give --out" + (" and at least one PATH" if args.command == "segment" else "")
                      + " (or --show-params).")
        if args.command == "evaluate":
            from zsnb import evaluate

            result = evaluate.evaluate(args.method, args.backbone, args.dataset, args.out, args.root, args.limit,
                                       args.device, args.dtype, not args.no_progress, args.weights, overrides)
            if result is not None:
                print(evaluate.markdown(result))
            return 0
        result = segment_paths(args.method, args.backbone, args.paths, args.out, args.weights, args.device,
                               overrides, not args.no_progress, args.dtype)
    except ZsnbError as err:  # the message says what to fix; a traceback would bury it
        sub.exit(EXIT_USAGE, f"{sub.prog}: error: {err}\n")
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished images are kept in {args.out}; rerun the same command to continue.",
              file=sys.stderr)
        return 130
    print(f"{result['done']} segmented, {result['skipped']} already done, {len(result['failed'])} failed "
          f"-> {args.out}")
    for path, why in result["failed"].items():
        print(f"failed: {path}: {why}", file=sys.stderr)
    return EXIT_FAILED if result["failed"] else 0
