"""The command line: `python -m zsnb segment ...` segments a user's own images; `python -m zsnb evaluate ...`
runs `zsnb.evaluate`. See `python -m zsnb segment --help`.

For each image, OUT holds <name>.labels.png (the label map, lossless: a palette PNG whose index at each pixel is
its label 0..k-1 and whose palette is SEGMENT_COLOURS, so a viewer shows the segments in colour; above 256
segments a 16-bit grey PNG, which holds the labels but looks black), <name>.overlay.png (segments over the
image, outlined) and <name>.json (the record), where <name> is the image's path
relative to the folder it was found in (or its file name when given directly), extension kept. Every file is
written to a temporary name of this process's own (.<file>.<host>-<pid>.tmp) and renamed, the record last: a
record marks a finished image, so a rerun skips it and an interrupted run (Ctrl-C, SIGKILL) loses only the
images in flight.

Many processes may share one OUT. A process claims an image before segmenting it by creating <name>.claim
(hard-linked from a complete temporary file: atomic, also on NFS), which holds its host, pid, start time and
a random token, and removes it after the record. An image claimed by another process is looked at again after
the rest, every CLAIM_POLL_S, until it is finished (done by another process) or its claim is stale: its
process is gone (by pid, on this host) or the claim is older than the claim timeout (from any host). Of the
processes that find a claim stale, only the one that creates .<name>.claim.<token>.taken takes it over.
Every claim is followed by a second look at the record, so an image finished meanwhile is not done again.
Under `accelerate launch` or torchrun (WORLD_SIZE > 1), process i of n takes images i, i + n, ... (as
zsnb.evaluate does) and still claims them, so plain processes can join.

The parsers need only names (methods, backbones, datasets), so `--help` imports no diffusers, matplotlib or
onnxruntime; a command imports them when it loads a model.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from zsnb import registry
from zsnb.backbones import KNOWN_NAMES, family_of, load_backbone  # diffusers is imported when a UNet is loaded
from zsnb.errors import ImageError, ZsnbError
from zsnb.images import image_tensor
from zsnb.parameters import parse

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
OVERLAY_ALPHA: float = 0.5  # share of the segment colour in the overlay
# matplotlib's tab20, as 0..255 RGB (its exact values: each is k / 255), so no matplotlib import is needed.
TAB20: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (174, 199, 232), (255, 127, 14), (255, 187, 120), (44, 160, 44), (152, 223, 138),
    (214, 39, 40), (255, 152, 150), (148, 103, 189), (197, 176, 213), (140, 86, 75), (196, 156, 148),
    (227, 119, 194), (247, 182, 210), (127, 127, 127), (199, 199, 199), (188, 189, 34), (219, 219, 141),
    (23, 190, 207), (158, 218, 229))


def _segment_colours(n: int = 256) -> tuple[tuple[int, int, int], ...]:
    """tab20, then distinct colours by golden-ratio steps of hue at three saturation/value levels, n in all."""
    import colorsys

    colours = list(TAB20)
    k = 0
    while len(colours) < n:
        level = (k // 7) % 3
        rgb = colorsys.hsv_to_rgb((k * 0.6180339887) % 1.0, (0.9, 0.6, 0.75)[level], (0.85, 1.0, 0.6)[level])
        colour = tuple(round(255 * c) for c in rgb)
        if colour not in colours:
            colours.append(colour)
        k += 1
    return tuple(colours)


SEGMENT_COLOURS: tuple[tuple[int, int, int], ...] = _segment_colours()  # label i -> colour i (mod 256)
EXIT_FAILED: int = 1  # some images could not be read
EXIT_USAGE: int = 2  # bad options, unknown method or backbone (argparse's status)
CLAIM_TIMEOUT_S: float = 3600.0  # a claim older than this is taken over: far longer than one image takes
CLAIM_POLL_S: float = 0.5  # how often a process that is through its own images looks at those others hold
HOST: str = socket.gethostname()
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

Many processes may share one OUT, on one machine or on several that see it over NFS: each image is claimed
before it is segmented, so it is segmented once, and each process waits for the images others hold.
  accelerate launch --num_processes 8 -m zsnb segment --method diffseg --backbone sd15 my_photos/ --out runs/seg
shards the images over 8 GPUs; starting `python -m zsnb segment ...` once per GPU (CUDA_VISIBLE_DEVICES=i)
shares them by claims alone. A claim whose process is gone is taken over: on the same machine at once, from
another machine when older than --claim-timeout.

exit status: 0 all images segmented (here, earlier or by another process); 1 some files could not be read
(named at the end, the others are done); 2 bad options, an unknown method or backbone, or OUT holding another
run's results; 130 interrupted by Ctrl-C or SIGTERM (what was finished is kept).
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


def _process() -> str:
    """This process as its temporary files name it: <host>-<pid>, unique among running processes."""
    return f"{HOST}-{os.getpid()}"


def _write_atomic(path: Path, write: Any) -> None:
    """Call write(temporary path), then rename it to `path`: a reader never sees a half-written file, and the
    temporary name is this process's own, so no other process renames it."""
    tmp = path.with_name(f".{path.name}.{_process()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:  # an error or Ctrl-C mid-write leaves no temporary file
        tmp.unlink(missing_ok=True)


def _create(path: Path, content: str) -> bool:
    """Make `path` holding `content` unless it exists, atomically (also on NFS); True if this call made it."""
    tmp = path.with_name(f".{path.name}.{_process()}.tmp")
    try:
        tmp.write_text(content)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # never replaces an existing `path`
        return tmp.stat().st_nlink == 2  # NFS may answer a retried link that did succeed with EEXIST
    finally:
        tmp.unlink(missing_ok=True)


def _alive(claim: dict[str, Any]) -> bool | None:
    """Whether the process that made `claim` is running: known by its pid on this host, else None."""
    if claim["host"] != HOST or os.name != "posix":  # on Windows os.kill(pid, 0) would end the process
        return None
    if claim["pid"] == os.getpid():  # a claim we do not hold with our pid: left by an earlier process
        return False
    try:
        os.kill(claim["pid"], 0)  # signal 0 only asks whether the pid exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        pass
    return True


def _claim(base: Path, timeout: float) -> bool:
    """Claim the image written at `base` for this process: True if it now holds <base>.claim (see the module)."""
    path = base.with_name(base.name + ".claim")
    mine = json.dumps({"host": HOST, "pid": os.getpid(), "time": time.time(), "token": secrets.token_hex(8)})
    while not _create(path, mine):
        try:
            theirs = json.loads(path.read_text())
        except FileNotFoundError:  # released since we looked: try again
            continue
        alive = _alive(theirs)
        if alive is not False and time.time() - theirs["time"] < timeout:
            return False
        # Stale: of the processes that see it so, only the one that makes this marker takes it over. A claim made
        # since has another token, so a look at the stale one cannot take over the new one.
        if not _create(path.with_name(f".{path.name}.{theirs['token']}.taken"), mine):
            return False
        _write_atomic(path, lambda tmp: tmp.write_text(mine))
        if alive is False:  # the dead process's temporary files (a live one past the timeout still renames its own)
            for tmp in base.parent.glob(glob.escape(f".{base.name}.") + f"*.{theirs['host']}-{theirs['pid']}.tmp"):
                tmp.unlink(missing_ok=True)
        return True
    return True


def _release(base: Path) -> None:
    """Remove this process's claim on the image written at `base` and the markers of claims taken over."""
    path = base.with_name(base.name + ".claim")
    path.unlink(missing_ok=True)
    for marker in base.parent.glob(glob.escape(f".{path.name}.") + "*.taken"):
        marker.unlink(missing_ok=True)


def save_labels(labels: torch.Tensor, path: Path) -> None:
    """(H, W) labels 0..k-1 -> lossless PNG: a palette PNG (index = label, colours SEGMENT_COLOURS) up to 256
    labels, so any viewer shows the segments; above that a 16-bit grey PNG (lossless, but it looks black)."""
    arr = labels.cpu().numpy()
    if arr.min() < 0 or arr.max() > np.iinfo(np.uint16).max:
        raise ZsnbError(f"labels span {arr.min()}..{arr.max()}; a PNG label map holds 0..65535.")
    if arr.max() <= np.iinfo(np.uint8).max:
        image = Image.frombytes("P", (arr.shape[1], arr.shape[0]), arr.astype(np.uint8).tobytes())
        image.putpalette([c for colour in SEGMENT_COLOURS for c in colour])
    else:
        image = Image.fromarray(arr.astype(np.uint16))
    _write_atomic(path, lambda tmp: image.save(tmp, format="PNG"))


def read_labels(path: str | Path) -> np.ndarray:
    """A label PNG written by `save_labels` -> (H, W) int64 labels (a palette PNG's indices, not its colours)."""
    with Image.open(path) as im:
        return np.asarray(im).astype(np.int64)


def boundaries(labels: np.ndarray, width: int = 1) -> np.ndarray:
    """(H, W) labels -> (H, W) bool, True where a pixel's right or lower neighbour has another label: a line on one
    side of every boundary between segments, widened to `width` pixels towards the upper left."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    line = edge.copy()
    for step in range(1, width):
        line[:, :-step] |= edge[:, step:]
        line[:-step, :] |= edge[step:, :]
    return line


def outline_width(height: int, width: int) -> int:
    """Outline width in pixels: 1 below 768 pixels on the long side, one more for each further 512."""
    return 1 + max(0, max(height, width) - 256) // 512


def overlay(image: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """(3, H, W) image in [0, 1], (H, W) labels -> (H, W, 3) uint8: segment colours blended over the image, and
    each segment's outline (`boundaries`) drawn in black or white, whichever contrasts with the pixel under it."""
    lab = labels.cpu().numpy()
    tint = np.asarray(SEGMENT_COLOURS, dtype=np.float64)[lab % len(SEGMENT_COLOURS)] / 255  # (H, W, 3)
    mixed = (1 - OVERLAY_ALPHA) * image.permute(1, 2, 0).numpy() + OVERLAY_ALPHA * tint
    edge = boundaries(lab, outline_width(*lab.shape))
    luminance = mixed @ np.array([0.299, 0.587, 0.114])
    mixed[edge] = np.where(luminance[edge, None] > 0.5, 0.0, 1.0)
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


def run_fields(method: str, backbone: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """What a record says of the model it was made with, beyond the settings a rerun must match: the weights'
    id, dtype and device (they may differ between processes sharing OUT), the input size used and the official
    one (the method's for this backbone family, without --set)."""
    return {"weights_id": backbone.weights_id, "dtype": str(backbone.dtype).removeprefix("torch."),
            "device": str(backbone.device), "size": registry.params(method, backbone, **overrides).record.size,
            "official_size": registry.params(method, backbone).record.size}


def segment_one(path: Path, base: Path, backbone: Any, settings: dict[str, Any], overrides: dict[str, Any],
                extra: dict[str, Any] | None = None) -> int:
    """Segment one image file and write its label map, overlay and record (last); returns the segment count.

    extra: more fields for the record (`run_fields`)."""
    image = image_tensor(path)  # ImageError for an unreadable or corrupt file
    start = time.perf_counter()
    labels = registry.segment(settings["method"], backbone, image, **overrides)
    seconds = time.perf_counter() - start
    base.parent.mkdir(parents=True, exist_ok=True)
    save_labels(labels, base.with_name(base.name + ".labels.png"))
    _write_atomic(base.with_name(base.name + ".overlay.png"),
                  lambda tmp: Image.fromarray(overlay(image, labels)).save(tmp, format="PNG"))
    segments = int(labels.unique().numel())
    record = {**settings, **(extra or {}), "image": str(path), "height": int(labels.shape[0]),
              "width": int(labels.shape[1]), "segments": segments, "seconds": round(seconds, 4)}
    _write_atomic(base.with_name(base.name + ".json"), lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    return segments


def _segment_claimed(path: Path, base: Path, backbone: Any, settings: dict[str, Any], overrides: dict[str, Any],
                     timeout: float, extra: dict[str, Any] | None = None) -> str | None:
    """Segment one image unless it is finished or held by another process -> "done", "other" or None (held)."""
    record = base.with_name(base.name + ".json")
    if finished(record, settings):
        return "other"
    base.parent.mkdir(parents=True, exist_ok=True)
    if not _claim(base, timeout):
        return None
    try:
        if finished(record, settings):  # finished by its last holder between the look and the claim
            return "other"
        segment_one(path, base, backbone, settings, overrides, extra)
        return "done"
    finally:
        _release(base)


def _shard(device: str | None) -> tuple[int, int, str | torch.device]:
    """(this process's index, number of processes, device): accelerate's under `accelerate launch` or torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState  # imported here: a plain run needs no accelerate

        state = PartialState(cpu=device == "cpu")
        return state.process_index, state.num_processes, device or state.device
    return 0, 1, device or ("cuda" if torch.cuda.is_available() else "cpu")


def segment_paths(method: str, backbone: str, paths: Sequence[str | Path], out: str | Path, weights: str = "pretrained",
                  device: str | None = None, overrides: dict[str, Any] | None = None, progress: bool = True,
                  dtype: str | None = None, claim_timeout: float = CLAIM_TIMEOUT_S) -> dict[str, Any]:
    """Segment every image in `paths` (this process's shard) into `out`, sharing OUT with other processes (see
    the module docstring) -> {done (here), skipped (done before), other (by another process), failed: {path: why}}.

    Returns when every image is finished or failed: it waits for those other processes hold.
    """
    images = find_images(paths)
    overrides = overrides or {}
    registry.family_params(method, family_of(backbone), **overrides)  # bad names or values fail before loading
    rank, processes, device = _shard(device)
    model = load_backbone(backbone, device=device, dtype=dtype, weights=weights, progress=progress)
    settings = _settings(method, backbone, weights, registry.params(method, model, **overrides).record.as_dict())
    extra = run_fields(method, model, overrides)
    out = Path(out)
    names = list(images)[rank::processes]
    pending = [name for name in names if not finished(out / f"{name}.json", settings)]
    result: dict[str, Any] = {"done": 0, "skipped": len(names) - len(pending), "other": 0, "failed": {}}
    bar = tqdm(total=len(names), initial=result["skipped"], desc=f"{method} on {backbone}", unit="image",
               disable=not progress)
    while pending:
        held = []  # claimed by live processes: looked at again after the rest
        for name in pending:
            try:
                outcome = _segment_claimed(images[name], out / name, model, settings, overrides, claim_timeout,
                                           extra)
                if outcome is None:
                    held.append(name)
                    continue
                result[outcome] += 1
            except (ImageError, OSError) as err:  # unreadable or corrupt: named at the end, the batch goes on
                result["failed"][str(images[name])] = str(err)
                bar.set_postfix(failed=len(result["failed"]))
            bar.update()
        if held:
            time.sleep(CLAIM_POLL_S)
        pending = held
    return result


def _options(parser: argparse.ArgumentParser, backbone_default: str | None, method_required: bool = True) -> None:
    """The options `segment` and `evaluate` share."""
    parser.add_argument("--method", required=method_required, help="a registered method: "
                        + ", ".join(registry.REGISTRY) + ("" if method_required else " (required unless --check)"))
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
    seg.add_argument("--claim-timeout", type=float, default=CLAIM_TIMEOUT_S, metavar="SECONDS",
                     help="take over a claim older than this even when its process may be running (default: "
                     "%(default).0f; a claim on this machine is taken over as soon as its process is gone)")
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
    ev.add_argument("--check", action="store_true",
                    help="check the dataset folder (--dataset, --root) in seconds and exit: files present, image/label "
                    "pairs of the same size, the count against the published split, the curated list's checksum; "
                    "exit 0 when usable, 2 with what is wrong and how to fix it")
    _options(ev, "organism", method_required=False)
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
    # A scheduler's or torchrun's stop (SIGTERM) ends the run as Ctrl-C does: the claim in hand is released.
    handler = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if getattr(args, "check", False):
            from zsnb import data

            report = data.check(args.dataset, args.root)
            print(report.text())
            return 0 if report.usable else EXIT_USAGE
        if args.method is None:
            sub.error("the following arguments are required: --method (or --check)")
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
                               overrides, not args.no_progress, args.dtype, args.claim_timeout)
    except ZsnbError as err:  # the message says what to fix; a traceback would bury it
        sub.exit(EXIT_USAGE, f"{sub.prog}: error: {err}\n")
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM
        print(f"\ninterrupted: finished images are kept in {args.out}; rerun the same command to continue.",
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, handler)
    print(f"{result['done']} segmented here, {result['skipped']} already done, {result['other']} done by another "
          f"process, {len(result['failed'])} failed -> {args.out}")
    for path, why in result["failed"].items():
        print(f"failed: {path}: {why}", file=sys.stderr)
    return EXIT_FAILED if result["failed"] else 0
