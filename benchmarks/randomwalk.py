"""Random-walk NCut (zsnb.randomwalk): speed at SD scale and quality on the organism's world.

Speed: synthetic SD1.x self-attention (benchmarks/diffseg.py's planted layers, 64/32/16/8), aggregated to a
4096 x 4096 walk. Each step is timed interleaved with the reference, one fp32 GEMM (4096 x 4096)^2, so a
busy machine slows both alike; P^k by squaring is compared with k - 1 plain products and with one eigh.
Quality: on world.TRAIN_SEEDS[:48] the power k and the graph are chosen (object-level mIoU, automatic
threshold); on world.EVAL_SEEDS[:100] the chosen default is scored beside DiffSeg with the organism's defaults.
Each quality row's s / image times the method's registry adaptor on captures already taken (maps aggregated,
then segmented; the capture itself not counted).

    python benchmarks/randomwalk.py [--out benchmarks/results] [--repeats 3] [--n-eval 100] [--quality-only]

--quality-only reruns the organism part and keeps the speed rows of the existing randomwalk.json (the table
then says when they were measured).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

# benchmarks/ is on sys.path when this file runs: reuse the sibling benchmarks' input and timing helpers
from diffseg import synthetic_layers
from timing import median_times

from zsnb import diffseg, load_backbone, randomwalk, registry, world
from zsnb.parameters import Params
from zsnb.protocol import Backbone, Capture, Needs
from zsnb.worldeval import captures, score

SIDE: int = 64
TRAIN_K: tuple[int, ...] = (1, 2, 3, 4)
N_TRAIN: int = 48


def speed(repeats: int, seed: int) -> list[dict]:
    """Rows {step, s, gemm_s, gemms} at 64 x 64 tokens, each median interleaved with the reference GEMM."""
    layers = synthetic_layers(regions=10, sharpness=4.0, noise=0.2, noise_dims=16, seed=seed)
    p = randomwalk.transition_matrix(diffseg.aggregate(layers))
    p32 = p.float()
    pi = randomwalk.stationary(p)
    g = torch.Generator().manual_seed(seed)
    a, b = torch.rand(SIDE**2, SIDE**2, generator=g), torch.rand(SIDE**2, SIDE**2, generator=g)
    sym = (a + a.T) / 2

    def naive(k: int) -> torch.Tensor:
        out = p32
        for _ in range(k - 1):
            out = out @ p32
        return out

    def cuts(k: int) -> torch.Tensor:
        return randomwalk.recursive_cut(randomwalk.flow_graph(randomwalk.power(p32, k).double(), pi))[0]

    steps = {"stationary distribution (float64 solve)": lambda: randomwalk.stationary(p),
             **{f"P^{k} by squaring (fp32)": (lambda k=k: randomwalk.power(p32, k)) for k in (2, 4, 8, 16)},
             "P^4 by 3 plain products (fp32)": lambda: naive(4),
             "cosine adjacency of P rows": lambda: randomwalk.adjacency(p32),
             **{f"flow graph + recursive cuts, k={k}, automatic": (lambda k=k: cuts(k)) for k in (1, 4)},
             "eigh of the symmetric 4096 x 4096 (spectral route)": lambda: torch.linalg.eigh(sym)}
    rows = []
    for name, fn in steps.items():
        work_s, gemm_s = median_times([fn, lambda: a @ b], repeats)
        rows.append({"step": name, "s": work_s, "gemm_s": gemm_s, "gemms": work_s / gemm_s})
    for k in (1, 4):
        labels, nodes = randomwalk.recursive_cut(randomwalk.flow_graph(randomwalk.power(p32, k).double(), pi))
        rows[[r["step"] for r in rows].index(f"flow graph + recursive cuts, k={k}, automatic")].update(
            segments=len(labels.unique()), nodes=len(nodes))
    return rows


def held(backbone: Backbone, seeds, needs: Needs) -> list[tuple[list[world.Scene], Capture]]:
    """(scenes, capture) batches of `seeds` under `needs`, kept so that every setting segments the same capture."""
    return list(captures(backbone, seeds, needs, progress=False))


def quality(n_eval: int) -> dict:
    """Training-seed choice of (k, graph) and held-out scores beside DiffSeg; each row timed."""
    bb = load_backbone("organism")
    base = registry.params("randomwalk", bb).record
    ds = registry.params("diffseg", bb).record

    def run(batches, method: str, record: Params) -> dict:
        start = time.perf_counter()
        preds = [registry.segment_capture(method, cap, i, record, s.objects.shape) for scenes, cap in batches
                 for i, s in enumerate(scenes)]
        return {**score(preds, [s for scenes, _ in batches for s in scenes]),
                "s_per_image": (time.perf_counter() - start) / len(preds)}

    train = held(bb, world.TRAIN_SEEDS[:N_TRAIN], base.needs())
    sweep = [{"k": k, "graph": graph, **run(train, "randomwalk", base.replace(k=k, graph=graph))}
             for graph in randomwalk.GRAPHS for k in TRAIN_K]
    ev = held(bb, world.EVAL_SEEDS[:n_eval], base.needs())
    rows = {f"random-walk NCut, defaults ({base.graph}, k={base.k}, automatic)": run(ev, "randomwalk", base)}
    rows["random-walk NCut, k=2, automatic"] = run(ev, "randomwalk", base.replace(k=2))
    rows["cosine adjacency, k=1, automatic"] = run(ev, "randomwalk", base.replace(graph="adjacency"))
    for tau in (0.7, 0.8):
        rows[f"random-walk NCut, k=1, constant threshold {tau}"] = run(ev, "randomwalk", base.replace(threshold=tau))
    rows["DiffSeg, organism defaults"] = run(held(bb, world.EVAL_SEEDS[:n_eval], ds.needs()), "diffseg", ds)
    return {"train_seeds": f"world.TRAIN_SEEDS[:{N_TRAIN}]", "eval_seeds": f"world.EVAL_SEEDS[:{n_eval}]",
            "defaults": base.as_dict(), "diffseg_defaults": ds.as_dict(), "train_sweep": sweep, "eval": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-eval", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quality-only", action="store_true", help="keep the stored speed rows")
    args = parser.parse_args()
    torch.set_num_threads(1)  # ratios are stable on a shared CPU only with one thread (see diffcut.py)

    if args.quality_only:
        old = json.loads((args.out / "randomwalk.json").read_text())
        rows, repeats = old["speed"], old["repeats"]
        speed_note = old.get("speed_note") or "speed rows kept from the previous full run (--quality-only)"
    else:
        rows, repeats, speed_note = speed(args.repeats, args.seed), args.repeats, ""
    q = quality(args.n_eval)
    result = {"torch": torch.__version__, "threads": 1, "repeats": repeats, "tokens": SIDE**2,
              "speed": rows, "speed_note": speed_note, **q}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "randomwalk.json").write_text(json.dumps(result, indent=2, default=list) + "\n")
    gemm_s = statistics.median(r["gemm_s"] for r in rows)
    table = ["| step | median s | x GEMM | segments | nodes |", "|---|---|---|---|---|"]
    table += [f"| {r['step']} | {r['s']:.2f} | {r['gemms']:.2f} | {r.get('segments', '')} | {r.get('nodes', '')} |"
              for r in rows]
    sweep = ["| graph | k | mIoU objects | mIoU parts | segments |", "|---|---|---|---|---|"]
    sweep += [f"| {r['graph']} | {r['k']} | {r['miou_objects']:.3f} | {r['miou_parts']:.3f} | {r['segments']:.1f} |"
              for r in q["train_sweep"]]
    ev = ["| method | mIoU objects | mIoU parts | ARI objects | segments | s / image |", "|---|---|---|---|---|---|"]
    ev += [f"| {name} | {r['miou_objects']:.3f} ± {r['miou_objects_se']:.3f} | {r['miou_parts']:.3f} ± "
           f"{r['miou_parts_se']:.3f} | {r['ari_objects']:.3f} | {r['segments']:.1f} | {r['s_per_image']:.3f} |"
           for name, r in q["eval"].items()]
    (args.out / "randomwalk.md").write_text(
        f"# Random-walk NCut benchmark\n\ntorch {result['torch']}, 1 thread, median of {repeats} "
        f"(interleaved with the reference){'; ' + speed_note if speed_note else ''}. Speed at SD1.x scale "
        f"({SIDE} x {SIDE} = {SIDE**2} tokens, planted "
        f"synthetic attention); reference: one fp32 GEMM (4096 x 4096) @ (4096 x 4096), median {gemm_s:.2f} s.\n\n"
        + "\n".join(table)
        + f"\n\nChoice of k and graph on {q['train_seeds']} (automatic threshold, organism, t = "
        f"{q['defaults']['timesteps']}):\n\n" + "\n".join(sweep)
        + f"\n\nHeld out: {q['eval_seeds']} (organism; mean ± standard error):\n\n" + "\n".join(ev) + "\n")
    print("\n".join(table + [""] + sweep + [""] + ev))


if __name__ == "__main__":
    main()
