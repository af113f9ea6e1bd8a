"""Evaluate a method on a dataset under the papers' protocol: `python -m zsnb evaluate --help`.

    python -m zsnb evaluate --method diffseg --backbone sd14 --dataset coco-stuff-27 --root data/cocostuff \\
        --out runs/eval/diffseg-coco --device cuda
    accelerate launch --num_processes 8 -m zsnb evaluate ...        # shards the images over 8 processes

Each method runs with its registry parameters on the backbone and dataset (`zsnb.registry.params`: the
official ones, with the paper's per-dataset settings, for real backbones) and the paper's preprocessing
(`zsnb.data.prepare`: the method's input size, label size and crop). Every finished image is appended as
one JSON line to OUT/records-<rank>.jsonl (written in one call, flushed, fsynced), so an interrupted run
loses at most the images in flight and a rerun with the same OUT resumes with the rest. When every image
is done, the main process merges all record files into OUT/results.json and OUT/results.md.
OUT/config.json records the method, backbone, dataset, weights, dtype and parameters; resuming with any of
them changed is refused, so records of two models never mix. `--weights random` runs a backbone's
architecture with random weights, offline.

results.md (and `table`) say what was run: the weights (random, pretrained or the organism's, with their id),
the input size against the method's official one on that backbone family, any other parameter changed from
the official value, the number of images against the full split, dtype and device. The paper's number is
printed beside ours only for a comparable run (pretrained weights, official parameters, the whole split);
otherwise it is withheld, with a sentence that says what differs. `python -m zsnb evaluate --check --dataset D
--root R` checks a dataset folder in seconds before a long run (`zsnb.data.check`).
Across nodes (`accelerate launch --num_machines ...`), OUT must be on a filesystem every node sees.
On a CPU-only machine, `accelerate launch --multi_gpu --num_processes 2 ... --device cpu` runs 2 processes.

Real datasets: per-image Hungarian matching with TP/FP/FN summed over the dataset (mIoU, pixel accuracy);
datasets with a background class (VOC) use DiffCut's many-to-one background matching. The world: mean
over scenes of the per-scene mIoU against objects and parts, as in `zsnb.worldeval`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zsnb import data, metrics, registry, worldeval
from zsnb.backbones import load_backbone
from zsnb.errors import ZsnbError
from zsnb.protocol import Backbone


def score_sample(pred: torch.Tensor, sample: data.Sample, label: np.ndarray, dataset: data.Dataset) -> dict:
    """One image's record: Hungarian TP/FP/FN per class (real datasets) or segment scores (world)."""
    pred_np = pred.cpu().numpy()
    n_pred = int(len(np.unique(pred_np)))
    if dataset.n_class is None:
        return {**worldeval.scene_scores(pred_np, label, sample.parts), "segments": n_pred}
    if dataset.background is None:
        m = metrics.match_image(pred_np, label, dataset.n_class, ignore_index=data.IGNORE)
    else:
        m, _ = metrics.match_image_background(pred_np, label, dataset.n_class, dataset.background,
                                              ignore_index=data.IGNORE)
    return {"tp": m.tp.tolist(), "fp": m.fp.tolist(), "fn": m.fn.tolist(), "n_labelled": m.n_labelled,
            "segments": n_pred}


def read_records(out: Path) -> dict[int, dict]:
    """{image index: record} from every OUT/records-*.jsonl; a torn last line (killed mid-write) is skipped."""
    records = {}
    for path in sorted(out.glob("records-*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # only the last line of a killed process can be torn; that image is redone
            records[rec["index"]] = rec
    return records


def _end_torn_line(path: Path) -> None:
    """If a killed run left `path` ending mid-line, end that line so the next record stands alone."""
    if path.exists() and path.stat().st_size:
        with path.open("rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")


def _append(path: Path, record: dict) -> None:
    """Append one record as one JSON line with a single write, then fsync (a kill never half-merges lines)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_config(out: Path, config: dict) -> None:
    """Write OUT/config.json, or refuse to resume into OUT with a different configuration."""
    path = out / "config.json"
    config = json.loads(json.dumps(config))  # compare as stored: JSON turns tuples into lists
    if path.exists():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), v) for k, v in config.items() if old.get(k) != v}
        if diff:
            raise ZsnbError(f"{out} holds a run with other settings {diff} (old, new); pass a new --out to "
                            "start a separate run, or the same settings to resume this one.")
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=1) + "\n")
    tmp.replace(path)


def evaluate_shard(method: str, backbone: Backbone, dataset: data.Dataset, indices: Sequence[int], out: Path,
                   rank: int = 0, progress: bool = True, **overrides: Any) -> int:
    """Segment and score the images `indices` not yet recorded in OUT; returns how many were done now.

    overrides replace the method's registry parameters (e.g. size, for a quick run at a reduced input side).
    """
    done = set(read_records(out))
    todo = [i for i in indices if i not in done]
    m, params = registry.get(method), registry.params(method, backbone, dataset.name, **overrides).record
    image_size = params.size
    label_size = getattr(params, m.label_key) or image_size
    path = out / f"records-{rank}.jsonl"
    _end_torn_line(path)
    for i in worldeval.bar(todo, desc=f"{method} {dataset.name} [{rank}]", disable=not progress, position=rank):
        sample = dataset[i]
        image, label = data.prepare(sample, image_size, label_size, m.crop_shrink)
        if sample.parts is not None:  # world: parts need the same preparation as the objects
            _, parts = data.prepare(dataclasses.replace(sample, label=sample.parts), image_size, label_size,
                                    m.crop_shrink)
            sample = dataclasses.replace(sample, parts=parts)
        start = time.perf_counter()
        cap = backbone.capture(image[None], params.needs())
        pred = m.segment_capture(cap, 0, params, label.shape)
        record = {"index": i, "name": sample.name, "seconds": round(time.perf_counter() - start, 3),
                  **score_sample(pred, sample, label, dataset)}
        _append(path, record)
    return len(todo)


def summarise(records: Sequence[dict], dataset: data.Dataset) -> dict[str, Any]:
    """Dataset numbers from per-image records: mIoU/acc in % (real datasets) or world means ± se."""
    n = len(records)
    segments = float(np.mean([r["segments"] for r in records])) if n else float("nan")
    if dataset.n_class is None:
        return {"n_images": n, "segments": segments,
                **worldeval.mean_se(records, ("miou_objects", "miou_parts", "ari_objects"))}
    tp, fp, fn = (np.sum([r[k] for r in records], axis=0) for k in ("tp", "fp", "fn"))
    s = metrics.scores(tp, fp, fn, int(sum(r["n_labelled"] for r in records)))
    return {"n_images": n, "miou": 100 * s.miou, "acc": 100 * s.acc, "segments": segments,
            "iou": {name: (None if math.isnan(v) else 100 * float(v)) for name, v in zip(dataset.class_names, s.iou,
                                                                                           strict=True)}}


def write_results(out: Path, config: dict, dataset: data.Dataset, n_expected: int,
                  run: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merge every record in OUT into results.json and results.md; returns the results.

    run: what `describe_run` says of this run (weights, sizes, split, dtype, device); stored in results.json,
    not in config.json, since the device differs from process to process.
    """
    records = [r for i, r in sorted(read_records(out).items()) if i < n_expected]
    result = {"config": config, "complete": len(records) == n_expected, "n_expected": n_expected,
              "run": dict(run) if run is not None else None, "scores": summarise(records, dataset),
              "paper": paper(config["method"], config["backbone"], config["dataset"]),
              "seconds_per_image": float(np.median([r["seconds"] for r in records])) if records else None}
    result["caveats"] = caveats(result)
    result["comparable"] = result["paper"] is not None and not result["caveats"]
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "results.md").write_text(markdown(result) + "\n")
    return result


def describe_run(method: str, model: Backbone, dataset: str, n_split: int, processes: int = 1,
                 **overrides: Any) -> dict[str, Any]:
    """What a run is, beside its scores: weights (kind and id), input size against the official one (the
    method's record for this backbone family and dataset, without overrides), every other parameter changed
    from its official value, the split's size (published, and as listed under ROOT), dtype and device."""
    as_json = lambda record: json.loads(json.dumps(record.as_dict()))  # noqa: E731 (tuples as lists)
    resolved = as_json(registry.params(method, model, dataset, **overrides).record)
    official = as_json(registry.params(method, model, dataset).record)
    return {"weights": model.weights, "weights_id": model.weights_id,
            "family": model.family, "size": resolved["size"], "official_size": official["size"],
            "changed": {k: [v, official[k]] for k, v in resolved.items() if k != "size" and v != official[k]},
            "n_split": n_split, "n_official": data.SPLIT_SIZES.get(dataset, n_split),
            "dtype": str(model.dtype).removeprefix("torch."), "device": str(model.device), "processes": processes}


_WEIGHTS = {"random": "random weights", "pretrained": "pretrained weights", "trained": "the organism's weights"}


def caveats(result: Mapping[str, Any]) -> list[str]:
    """Why a result is not comparable with a published number, one phrase each (empty when it is): weights
    other than pretrained, a non-official input size or parameter, a subset of the split, an incomplete run."""
    run, n = result.get("run"), result["scores"]["n_images"]
    if not run:
        return ["run details not recorded"]
    out = [] if run["weights"] == "pretrained" else [_WEIGHTS.get(run["weights"], f"{run['weights']} weights")]
    if run["size"] != run["official_size"]:
        out.append(f"{run['size']} px, official {run['official_size']}")
    out += [f"{k} {v}, official {o}" for k, (v, o) in run["changed"].items()]
    if n < run["n_official"]:
        out.append(f"{n:,} of {run['n_official']:,} images")
    if not result["complete"]:
        out.append("incomplete")
    return out


def run_line(result: Mapping[str, Any], size: bool = True) -> str:
    """One sentence on how a result was made: weights and their id, input size against the official one (if
    `size`), images of the split, dtype and device, parameters changed from the official values."""
    run, n = result.get("run"), result["scores"]["n_images"]
    if not run:
        return "Run: not recorded (results written before zsnb recorded weights, sizes, dtype and device)."
    parts = [f"{_WEIGHTS.get(run['weights'], run['weights'] + ' weights')} (id: {run['weights_id']})"]
    if size:
        official = run["official_size"]
        parts.append(f"input {run['size']} px (" + ("the official size" if run["size"] == official else
                                                     f"official {official}") + f" for {run['family']})")
    unit = "scenes" if result["config"]["dataset"] == "world" else "images"
    parts.append(f"{n:,} of {run['n_official']:,} {unit}" + (" (a subset)" if n < run["n_official"] else "")
                 + (f", ROOT lists {run['n_split']:,}" if run["n_split"] != run["n_official"] else ""))
    parts.append(f"{run['dtype']} on {run['device']}"
                 + (f", {run['processes']} processes" if run["processes"] > 1 else ""))
    if run["changed"]:
        parts.append("changed: " + ", ".join(f"{k} {v} (official {o})" for k, (v, o) in run["changed"].items()))
    return "Run: " + "; ".join(parts) + "."


def markdown(result: dict[str, Any]) -> str:
    """The results as Markdown: how the run was made, our numbers, and the paper's beside them only when the
    run is comparable (pretrained weights, official parameters, the whole split; see `caveats`)."""
    c, s, ref = result["config"], result["scores"], result["paper"]
    notes = caveats(result)
    head = (f"# {c['method']} on {c['dataset']} ({c['backbone']}{'' if result['complete'] else ', INCOMPLETE'})"
            f"\n\n{run_line(result)}\n\n")
    if "miou" not in s:
        return head + worldeval.score_table({"ours": s}, label="")
    ours = "ours" + (f" ({'; '.join(notes)})" if notes else "")
    rows = ("| | mIoU (%) | pixel accuracy (%) | segments |\n|---|---|---|---|\n"
            f"| {ours} | {s['miou']:.1f} | {s['acc']:.1f} | {s['segments']:.1f} |\n")
    if ref is None:
        return head + rows + "\nPaper: no published number for this method, backbone and dataset."
    if notes:
        return head + rows + (f"\nThe paper's {ref['miou']} mIoU ({ref['source']}) is not printed beside this row: "
                              "it was measured with pretrained weights and the official parameters on the whole "
                              f"split, and this run differs ({'; '.join(notes)}).")
    return head + rows + (f"| paper | {ref.get('miou', '-')} | {ref.get('acc', '-')} | - |\n\n"
                          f"Paper: {ref['source']}.")


def table(results: Sequence[dict[str, Any]]) -> str:
    """Several results (one dataset kind) as one Markdown table under how they were run; the paper's mIoU sits
    beside a row only when that run is comparable, else the row says why it is withheld."""
    lines = [run_line(r, size=False) for r in results]
    if len(set(lines)) > 1:  # runs made differently: one line each, named
        lines = [f"- {r['config']['method']} ({r['config']['backbone']}): {line}" for r, line in zip(results, lines,
                                                                                                  strict=True)]
    head = "\n".join(dict.fromkeys(lines)) + "\n\n"
    if results and "miou" not in results[0]["scores"]:
        return head + worldeval.score_table(
            {f"{r['config']['method']} ({r['config']['backbone']}, {_size_cell(r)} px, {r['scores']['n_images']} "
             "scenes)": r["scores"] for r in results}, columns=("miou_objects", "miou_parts", "segments"))
    rows = []
    for r in results:
        c, s, run = r["config"], r["scores"], r.get("run")
        ref, notes = paper(c["method"], c["backbone"], c["dataset"]), caveats(r)
        images = f"{s['n_images']:,}" + (f" of {run['n_official']:,}" if run else "")
        published = "-" if ref is None else f"withheld: {'; '.join(notes)}" if notes else f"{ref['miou']}"
        rows.append(f"| {c['method']} | {c['backbone']} | {c['dataset']} | {images} | {_size_cell(r)} | "
                    f"{s['miou']:.1f} | {s['acc']:.1f} | {published} | {ref['source'] if ref else 'none published'} |")
    return head + "\n".join(["| method | backbone | dataset | images | input (px) | mIoU (%) | acc. (%) | "
                             "paper mIoU | paper source |", "|---|---|---|---|---|---|---|---|---|", *rows])


def _size_cell(result: Mapping[str, Any]) -> str:
    """"512", or "128 (official 512)" for a non-official input size; "?" when the run was not recorded."""
    run = result.get("run")
    if not run:
        return "?"
    return f"{run['size']}" + ("" if run["size"] == run["official_size"] else f" (official {run['official_size']})")


def paper(method: str, backbone: str, dataset: str) -> dict[str, Any] | None:
    """The published numbers of a registered method on (backbone, dataset), or None."""
    return registry.REGISTRY[method].papers.get((backbone, dataset)) if method in registry.REGISTRY else None


def paper_table() -> str:
    """The published numbers zsnb compares against (every registered method's), as a Markdown table."""
    rows = [f"| {name} | {b} | {d} | {v['miou']} | {v.get('acc', '-')} | {v['source']} |"
            for name, m in registry.REGISTRY.items() for (b, d), v in m.papers.items()]
    return "\n".join(["| method | backbone | dataset | mIoU (%) | acc. (%) | source |", "|---|---|---|---|---|---|",
                      *rows])


def evaluate(method: str, backbone: str, dataset: str, out: str | Path, root: str | Path | None = None,
             limit: int | None = None, device: str | None = None, dtype: str | None = None,
             progress: bool = True, weights: str = "pretrained", overrides: Mapping[str, Any] | None = None
             ) -> dict[str, Any] | None:
    """Run (or resume) one evaluation into OUT; returns the results on the main process, None elsewhere.

    overrides: parameter values replacing the method's (e.g. {"size": 128}: smaller runs faster, scores differ).

    Under `accelerate launch` (or torchrun) the images are sharded by index over the processes, each on
    its own device; the main process waits for all of them and merges.
    """
    registry.get(method)  # an unknown method fails here, before any loading
    if limit is not None and limit < 1:
        raise ZsnbError(f"--limit {limit}: give a positive number of images, or leave it out for all.")
    ds = data.load_dataset(dataset, root)
    n = len(ds) if limit is None else min(limit, len(ds))
    from accelerate import PartialState  # imported here: a plain import of zsnb needs no accelerate

    state = PartialState(cpu=device == "cpu")
    out = Path(out)
    overrides = dict(overrides or {})
    model = load_backbone(backbone, device=device or state.device, dtype=dtype, weights=weights,
                          progress=progress)
    # Weights, the dtype the model runs in (not how it was asked for) and method parameters are part of the run:
    # records of a retrained, re-tuned or re-cast model must not mix.
    resolved = registry.params(method, model, dataset, **overrides)
    config = {"method": method, "backbone": backbone, "dataset": dataset, "dtype": str(model.dtype).removeprefix(
        "torch."), "weights": model.weights_id, "parameters": resolved.record.as_dict()}
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        _check_config(out, config)
    state.wait_for_everyone()
    if not state.is_main_process:
        _check_config(out, config)
    indices = range(state.process_index, n, state.num_processes)
    evaluate_shard(method, model, ds, indices, out, state.process_index, progress, **overrides)
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    return write_results(out, config, ds, n, describe_run(method, model, dataset, len(ds), state.num_processes,
                                                          **overrides))
