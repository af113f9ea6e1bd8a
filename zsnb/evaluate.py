"""Evaluate a method on a dataset under the papers' protocol: `python -m zsnb evaluate --help`.

    python -m zsnb evaluate --method diffseg --backbone sd14 --dataset coco-stuff-27 --root data/cocostuff \\
        --out runs/eval/diffseg-coco --device cuda
    accelerate launch --num_processes 8 -m zsnb evaluate ...        # shards the images over 8 processes

Each method runs with its registry parameters on the backbone and dataset (`zsnb.registry.params`: the
official ones, with the paper's per-dataset settings, for real backbones) and the paper's preprocessing
(`zsnb.data.prepare`: the method's input size, label size and crop). Every finished image is appended as
one JSON line to OUT/records-<rank>.jsonl (written in one call, flushed, fsynced), so an interrupted run
loses at most the images in flight and a rerun with the same OUT resumes with the rest. When every image
is done, the main process merges all record files into OUT/results.json and OUT/results.md, the paper's
number beside ours.
OUT/config.json records the method, backbone, dataset, weights, dtype and parameters; resuming with any of
them changed is refused, so records of two models never mix. `--weights random` runs a backbone's
architecture with random weights, offline.
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
from tqdm.auto import tqdm

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
    for i in tqdm(todo, desc=f"{method} {dataset.name} [{rank}]", disable=not progress, position=rank):
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


def write_results(out: Path, config: dict, dataset: data.Dataset, n_expected: int) -> dict[str, Any]:
    """Merge every record in OUT into results.json and results.md; returns the results."""
    records = [r for i, r in sorted(read_records(out).items()) if i < n_expected]
    result = {"config": config, "complete": len(records) == n_expected, "n_expected": n_expected,
              "scores": summarise(records, dataset),
              "paper": paper(config["method"], config["backbone"], config["dataset"]),
              "seconds_per_image": float(np.median([r["seconds"] for r in records])) if records else None}
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "results.md").write_text(markdown(result) + "\n")
    return result


def markdown(result: dict[str, Any]) -> str:
    """The results as a Markdown table with the paper's number (if any) beside ours."""
    c, s, paper = result["config"], result["scores"], result["paper"]
    head = (f"# {c['method']} on {c['dataset']} ({c['backbone']}, {s['n_images']} of {result['n_expected']} "
            f"images{'' if result['complete'] else ', INCOMPLETE'})\n\n")
    if "miou" not in s:
        return head + worldeval.score_table({"ours": s}, label="")
    ref = paper or {}
    return head + ("| | mIoU (%) | pixel accuracy (%) | segments |\n|---|---|---|---|\n"
                   f"| ours | {s['miou']:.1f} | {s['acc']:.1f} | {s['segments']:.1f} |\n"
                   f"| paper | {ref.get('miou', '-')} | {ref.get('acc', '-')} | - |\n\n"
                   f"Paper: {ref.get('source', 'no published number for this method, backbone and dataset')}.")


def table(results: Sequence[dict[str, Any]]) -> str:
    """Several results (one dataset kind) as one Markdown table, the paper's mIoU beside ours."""
    if results and "miou" not in results[0]["scores"]:
        return worldeval.score_table({f"{r['config']['method']} ({r['config']['backbone']}, {r['scores']['n_images']} "
                                      f"scenes)": r["scores"] for r in results},
                                     columns=("miou_objects", "miou_parts", "segments"))
    rows = []
    for r in results:
        c, s = r["config"], r["scores"]
        ref = paper(c["method"], c["backbone"], c["dataset"]) or {}
        rows.append(f"| {c['method']} | {c['backbone']} | {c['dataset']} | {s['n_images']} | {s['miou']:.1f} | "
                    f"{s['acc']:.1f} | {ref.get('miou', '-')} | {ref.get('source', 'none published')} |")
    return "\n".join(["| method | backbone | dataset | images | mIoU (%) | acc. (%) | paper mIoU | paper source |",
                      "|---|---|---|---|---|---|---|---|", *rows])


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
    return write_results(out, config, ds, n)
