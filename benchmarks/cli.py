"""Throughput of `python -m zsnb segment` with 1 and 2 processes on one folder: `python benchmarks/cli.py`.

Two folders: the organism on world.EVAL_SEEDS[:40] (32 px PNGs) and the ViT-S/14 (`--backbone vit-s`) on the
three shipped photos copied to 12 files, both with randomwalk at its default side on the CPU, one thread per
process. Each runs into a fresh OUT as 1 process, as 2 plain processes started together (sharing the images
by claims) and as 2 processes under `accelerate launch --multi_gpu` (sharded by index, still claiming).
Wall time runs from the start to the last process's exit, so it includes each process's start (imports and
loading the model); "segmenting" is the time from the first record written to the last, the images per second
once every process is running. The claim and release of one image (the split's own cost) is timed apart, on
the same disk. Writes benchmarks/results/cli.json and cli.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timing import median_times  # benchmarks/timing.py: this script's folder is first on sys.path

from zsnb import cli, photos, world
from zsnb.organism.train import cpu_name

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
LAUNCHES = {"1 process": [[sys.executable]], "2 processes": [[sys.executable]] * 2,
            "2 processes, accelerate launch": [[str(Path(sys.executable).parent / "accelerate"), "launch",
                                                "--multi_gpu", "--num_processes", "2"]]}


def organism_folder(folder: Path, n: int) -> None:
    """n held-out world scenes as 32 x 32 PNGs."""
    for seed in world.EVAL_SEEDS[:n]:
        Image.fromarray((world.scene(seed, 32).image * 255).round().astype(np.uint8)).save(folder / f"{seed}.png")


def photo_folder(folder: Path, n: int) -> None:
    """The shipped photos copied to n files."""
    for i in range(n):
        name = photos.NAMES[i % len(photos.NAMES)]
        shutil.copy(photos.path(name), folder / f"{i:02d}-{name}.jpg")


def run(launch: list[list[str]], backbone: str, folder: Path, out: Path) -> dict:
    """Start every command of `launch` together on `folder` -> wall time, images/s, per-process summaries."""
    args = ["-m", "zsnb", "segment", "--method", "randomwalk", "--backbone", backbone, "--device", "cpu",
            "--no-progress", str(folder), "--out", str(out)]
    start = time.perf_counter()
    procs = [subprocess.Popen([*cmd, *args], env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for cmd in launch]
    summaries = []
    for proc in procs:
        stdout, stderr = proc.communicate()
        if proc.returncode:
            raise RuntimeError(stderr[-3000:])
        summaries += [line for line in stdout.splitlines() if "segmented here" in line]
    wall = time.perf_counter() - start
    records = sorted(out.glob("*.json"), key=lambda r: r.stat().st_mtime)
    first, last = records[0].stat().st_mtime, records[-1].stat().st_mtime
    return {"images": len(records), "wall_s": round(wall, 2), "images_per_s": round(len(records) / wall, 2),
            "segmenting_s": round(last - first, 2),
            "segmenting_images_per_s": round((len(records) - 1) / (last - first), 2),
            "median_s_per_image": round(statistics.median(json.loads(r.read_text())["seconds"] for r in records), 4),
            "summaries": [s.split(" -> ")[0] for s in summaries]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--photos", type=int, default=12)
    args = parser.parse_args()
    rows, load_before = [], os.getloadavg()[0]  # other work on the machine slows the 2-process rows most
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "x.png"
        claim_s = median_times([lambda: (cli._claim(base, cli.CLAIM_TIMEOUT_S), cli._release(base))], 200)[0]
        for backbone, fill, n in (("organism", organism_folder, args.scenes), ("vit-s", photo_folder, args.photos)):
            folder = Path(tmp) / backbone
            folder.mkdir()
            fill(folder, n)
            for name, launch in LAUNCHES.items():
                row = run(launch, backbone, folder, Path(tmp) / f"{backbone}-{len(rows)}")
                rows.append({"backbone": backbone, "processes": name, **row})
                print(rows[-1])
    result = {"rows": rows, "claim_release_ms": round(claim_s * 1000, 3), "threads_per_process": 1,
              "cpus": os.cpu_count(), "load_before": load_before, "machine": cpu_name(),
              "python": platform.python_version(), "torch": torch.__version__}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cli.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"# `python -m zsnb segment` with 1 and 2 processes ({os.cpu_count()} cores, {result['machine']}, "
             "1 thread per process)", "",
             "Randomwalk on the CPU; wall time includes each process's start (imports, loading the model); "
             "segmenting: from the first record to the last.", "",
             "| backbone | processes | images | wall (s) | images/s | segmenting images/s | median s/image | "
             "segmented by each |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['backbone']} | {r['processes']} | {r['images']} | {r['wall_s']:.1f} | {r['images_per_s']:.2f} | "
              f"{r['segmenting_images_per_s']:.2f} | {r['median_s_per_image']:.3f} | "
              f"{', '.join(s.split(' segmented')[0] for s in r['summaries'])} |" for r in rows]
    # A core's worth of other work leaves 2 processes less than a core each.
    shared = " (other work shared the cores: 2 processes could not run at twice the speed)" if load_before >= 1 else ""
    lines += ["", f"Claiming and releasing one image (the split's own cost per image): "
              f"{result['claim_release_ms']:.2f} ms, median of 200 on the same disk. Load average (1 min) before the "
              f"runs: {load_before:.1f}{shared}."]
    (args.out / "cli.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
