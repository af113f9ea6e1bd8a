"""Throughput of the evaluation runner on the organism's world: `python benchmarks/evaluate.py`.

Runs `zsnb.evaluate` for each method on world.EVAL_SEEDS[:n] into fresh folders (single process), then
DiffSeg again with 2 CPU processes under `accelerate launch` (sharded by image, merged), and checks that
the two give the same scores. Reports wall time, images per second and the median seconds per image.
Writes benchmarks/results/evaluate.json and evaluate.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from zsnb import evaluate, registry


def _row(processes: int, wall: float, n: int, res: dict) -> dict:
    """One table row from a run's wall time and its results."""
    return {"processes": processes, "wall_s": round(wall, 2), "images_per_s": round(n / wall, 2),
            "median_s_per_image": res["seconds_per_image"], "scores": res["scores"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-scenes", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    rows, n = {}, args.n_scenes
    with tempfile.TemporaryDirectory() as tmp:
        for method in registry.REGISTRY:
            start = time.perf_counter()
            res = evaluate.evaluate(method, "organism", "world", Path(tmp) / method, limit=n, device="cpu",
                                    progress=False)
            rows[method] = _row(1, time.perf_counter() - start, n, res)
        launcher = Path(sys.executable).parent / "accelerate"
        start = time.perf_counter()
        subprocess.run([str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "-m", "zsnb", "evaluate",
                        "--method", "diffseg", "--out", f"{tmp}/two", "--limit", str(n), "--device", "cpu",
                        "--no-progress"], check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        two = json.loads((Path(tmp) / "two/results.json").read_text())
        rows["diffseg, 2 processes"] = {**_row(2, time.perf_counter() - start, n, two),
                                        "same_scores_as_1_process": two["scores"] == rows["diffseg"]["scores"]}
    result = {"n_scenes": n, "rows": rows, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "cpus": os.cpu_count()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evaluate.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"# Evaluation runner on the organism world ({n} scenes, CPU, {os.cpu_count()} cores)", "",
             "Wall time includes loading the backbone (and, for 2 processes, starting them).", "",
             "| method | processes | wall (s) | images/s | median s/image | mIoU objects | mIoU parts |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {name} | {r['processes']} | {r['wall_s']:.1f} | {r['images_per_s']:.1f} | "
              f"{r['median_s_per_image']:.3f} | {r['scores']['miou_objects']:.3f} | {r['scores']['miou_parts']:.3f} |"
              for name, r in rows.items()]
    lines += ["", f"2 processes give the same scores as 1: {rows['diffseg, 2 processes']['same_scores_as_1_process']}"]
    (args.out / "evaluate.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
