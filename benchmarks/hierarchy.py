"""Static vs per-pixel adaptive timesteps on the organism (our implementation of arXiv 2606.15590's idea).

For each grouping (DiffSeg KL merge, recursive NCut) and each similarity map (plain attention, and the
contextual fusions of `zsnb.hierarchy`), compares on evaluation scenes (world.EVAL_SEEDS[:n]):
- the best static t, chosen on training scenes (world.TRAIN_SEEDS) separately for object and part mIoU;
- the best static t on the evaluation scenes themselves (an optimistic oracle, for reference);
- adaptive t* per pixel (criteria: entropy, neighbour agreement; targets: none, part, object).
The grouping thresholds (DiffSeg tau, NCut tau) and the feature-kernel temperature are chosen on training
scenes; the other DiffSeg parameters and NCut's alpha are the organism's defaults. Also times a
multi-timestep capture against a single-timestep one. Writes benchmarks/results/hierarchy.json and hierarchy.md.

    python benchmarks/hierarchy.py [--n-scenes 200] [--n-train 40] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from timing import median_times

import zsnb
from experiments.adaptive import Setting, beats, compare, paired_difference
from experiments.timesteps import HIERARCHY_DRAWS
from zsnb import hierarchy, registry, world, worldeval

TIMESTEPS: tuple[int, ...] = (25, 50, 100, 200, 300, 500)
FUSIONS: tuple[str, ...] = ("attention", "reweight", "random_walk", "features")
TEMPERATURES: tuple[float, ...] = (0.05, 0.1, 0.2)
KL_THRESHOLDS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.1)  # DiffSeg tau on the (fused) maps, tuned on train
NCUT_TAUS: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)  # NCut tau on sqrt(rows), tuned on train
TARGETS: tuple[str | None, ...] = (None, "part", "object")
LEVELS: dict[str, str] = {"objects": "miou_objects", "parts": "miou_parts"}
ADAPTIVE: dict[str, tuple[str, str | None]] = {"entropy": ("entropy", None), "agreement": ("agreement", None),
                                               "entropy/part": ("entropy", "part"),
                                               "entropy/object": ("entropy", "object")}  # name: (criterion, target)


def best_static(scores: dict[Setting, dict[str, float]], fusion: str, grouping: str, key: str) -> int:
    """Timestep of the static configuration with the highest `key` for this fusion and grouping."""
    ts = [t for t in TIMESTEPS if Setting(fusion, grouping, t) in scores]
    return max(ts, key=lambda t: scores[Setting(fusion, grouping, t)][key])


def time_capture(backbone, n: int, timesteps: tuple[int, ...], noise: str, tap: str, repeats: int) -> float:
    """Median seconds of one capture of n evaluation scenes at `timesteps` (self-attention + tap)."""
    images = worldeval.scene_tensor([world.scene(s) for s in world.EVAL_SEEDS[:n]])
    return median_times([lambda: zsnb.capture(backbone, images, timesteps, noise=noise, attention="self",
                                              features=(tap,))], repeats)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--n-scenes", type=int, default=200)
    parser.add_argument("--n-train", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--weights", default="pretrained", help="'random': untrained control (smoke test)")
    parser.add_argument("--noise", default="seeded", choices=("seeded", "none"),
                        help="input convention; 'seeded' is the recipe the notebooks use")
    parser.add_argument("--draws", type=int, default=HIERARCHY_DRAWS,
                        help="noise draws the maps are averaged over (seeded only; zsnb.capture)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backbone = zsnb.load_backbone("organism", weights=args.weights)
    ds, dc = registry.params("diffseg", backbone).record, registry.params("diffcut", backbone).record
    noise, tap = args.noise, dc.tap
    draws = args.draws if noise == "seeded" else 1
    common = {"timesteps": TIMESTEPS, "noise": noise, "seed": ds.seed, "draws": draws, "features_tap": tap}
    start = time.perf_counter()

    # 1. Thresholds, temperature and static t on training scenes only. Thresholds: static attention maps,
    # mean over t of (object + part mIoU) / 2; DiffSeg and NCut are independent, so their grids are paired.
    train_seeds = world.TRAIN_SEEDS[: args.n_train]
    grid: dict[str, dict[float, float]] = {"diffseg": {}, "ncut": {}}
    for kl, tau in zip(KL_THRESHOLDS, NCUT_TAUS, strict=True):
        p = {"diffseg": ds.replace(kl_threshold=kl), "ncut": dc.replace(tau=tau)}
        scores = compare(backbone, train_seeds, fusions=("attention",), criteria=(), params=p, **common)[0]
        for grouping, value in (("diffseg", kl), ("ncut", tau)):
            grid[grouping][value] = statistics.mean((s["miou_objects"] + s["miou_parts"]) / 2
                                                    for k, s in scores.items() if k.grouping == grouping)
    params = {"diffseg": ds.replace(kl_threshold=max(grid["diffseg"], key=grid["diffseg"].get)),
              "ncut": dc.replace(tau=max(grid["ncut"], key=grid["ncut"].get))}
    tuning, train_scores = {}, {}
    for temp in TEMPERATURES:
        scores = compare(backbone, train_seeds, fusions=FUSIONS[1:], criteria=(), params=params, temperature=temp,
                         **common)[0]
        tuning[temp] = statistics.mean((s["miou_objects"] + s["miou_parts"]) / 2 for s in scores.values())
        train_scores[temp] = scores
    temperature = max(tuning, key=tuning.get)
    train = {**compare(backbone, train_seeds, fusions=FUSIONS[:1], criteria=(), params=params, **common)[0],
             **train_scores[temperature]}

    # 2. Evaluation scenes.
    eval_seeds = world.EVAL_SEEDS[: args.n_scenes]
    scores, preds, scenes = compare(backbone, eval_seeds, fusions=FUSIONS, targets=TARGETS, params=params,
                                    temperature=temperature, **common)
    ref_ds = worldeval.evaluate(backbone, "diffseg", eval_seeds)
    ref_dc = worldeval.evaluate(backbone, "diffcut", eval_seeds)
    work_s = time.perf_counter() - start

    # 3. Summary rows: per method and fusion, static (train-chosen, per level), oracle, adaptive.
    rows = []
    for grouping in hierarchy.GROUPINGS:
        for fusion in FUSIONS:
            row: dict = {"method": grouping, "fusion": fusion}
            for level, key in LEVELS.items():
                t_train = best_static(train, fusion, grouping, key)
                t_oracle = best_static(scores, fusion, grouping, key)
                static_key = Setting(fusion, grouping, t_train)
                row[level] = {"static_t": t_train, "static": scores[static_key][key],
                              "static_se": scores[static_key][f"{key}_se"], "oracle_t": t_oracle,
                              "oracle": scores[Setting(fusion, grouping, t_oracle)][key]}
                for name, (criterion, target) in ADAPTIVE.items():
                    k = Setting(fusion, grouping, None, criterion, target)
                    diff = paired_difference(preds[k], preds[static_key], scenes, level)
                    row[level][name] = {"miou": scores[k][key], "se": scores[k][f"{key}_se"],
                                        "minus_static": diff[0], "minus_static_se": diff[1],
                                        "segments": scores[k]["segments"]}
            rows.append(row)

    # 4. Cost of the multi-timestep capture.
    n_time = 32
    single = time_capture(backbone, n_time, (ds.timestep,), noise, tap, args.repeats)
    multi = time_capture(backbone, n_time, TIMESTEPS, noise, tap, args.repeats)
    result = {
        "torch": torch.__version__, "threads": torch.get_num_threads(), "n_scenes": len(scenes),
        "n_train": args.n_train, "weights": args.weights, "timesteps": TIMESTEPS, "noise": noise, "draws": draws,
        "tap": tap,
        "temperature": temperature, "temperature_tuning_train": tuning,
        "diffseg_params": params["diffseg"].as_dict(), "ncut_params": params["ncut"].as_dict(),
        "threshold_tuning_train": grid,
        "reference": {"diffseg_defaults": ref_ds, "diffcut_defaults": ref_dc},
        "summary": rows, "scores": {str(k): v for k, v in scores.items()},
        "capture_s": {"n_images": n_time, "single_t": single, "multi_t": multi, "ratio": multi / single},
        "work_s": work_s,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hierarchy.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (args.out / "hierarchy.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    """The summary as a markdown report."""
    lines = [
        "# Adaptive timesteps benchmark (ours: arXiv 2606.15590 has no public code)\n",
        f"Organism, {r['n_scenes']} evaluation scenes (world.EVAL_SEEDS), timesteps {list(r['timesteps'])}, "
        f"noise {r['noise']!r} ({r.get('draws', 1)} draw(s) averaged), tap {r['tap']}; chosen on "
        f"{r['n_train']} training scenes: DiffSeg tau "
        f"{r['diffseg_params']['kl_threshold']}, NCut tau {r['ncut_params']['tau']}, temperature "
        f"{r['temperature']}, static t (per level). mIoU ± standard error; "
        "Δ = adaptive (entropy) minus static, paired over scenes. oracle = best static t on the evaluation "
        "scenes themselves (optimistic).\n",
        "| grouping | similarity | level | static t (train) | static | oracle t | oracle | adaptive entropy "
        "| Δ entropy | adaptive agreement | adaptive entropy + target |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["summary"]:
        for level in LEVELS:
            x = row[level]
            e, a = x["entropy"], x["agreement"]
            tgt = x["entropy/part" if level == "parts" else "entropy/object"]
            lines.append(
                f"| {row['method']} | {row['fusion']} | {level} | {x['static_t']} | {x['static']:.3f} ± "
                f"{x['static_se']:.3f} | {x['oracle_t']} | {x['oracle']:.3f} | {e['miou']:.3f} ± {e['se']:.3f} | "
                f"{e['minus_static']:+.3f} ± {e['minus_static_se']:.3f} | {a['miou']:.3f} ± {a['se']:.3f} | "
                f"{tgt['miou']:.3f} ± {tgt['se']:.3f} |")
    met = [f"{row['method']} / {row['fusion']} / {level} / {name} ({x[name]['minus_static']:+.3f} ± "
           f"{x[name]['minus_static_se']:.3f})" for row in r["summary"] for level, x in
           ((lv, row[lv]) for lv in LEVELS) for name in ADAPTIVE
           if beats(x[name]["minus_static"], x[name]["minus_static_se"])]
    lines += ["", "Target: adaptive t* beats the static t chosen on training scenes by ≥ 0.03 mIoU and by "
              "more than 3.0 standard errors (paired; `experiments.adaptive.beats`). Configurations meeting it: "
              + ("; ".join(met) if met else f"none of {len(r['summary']) * len(LEVELS) * len(ADAPTIVE)}") + "."]
    ref = r["reference"]
    c = r["capture_s"]
    lines += [
        "",
        f"References (organism defaults, own captures): DiffSeg objects "
        f"{ref['diffseg_defaults']['miou_objects']:.3f}, parts {ref['diffseg_defaults']['miou_parts']:.3f}; "
        f"DiffCut objects {ref['diffcut_defaults']['miou_objects']:.3f}, parts "
        f"{ref['diffcut_defaults']['miou_parts']:.3f}.",
        "",
        f"Capture cost ({c['n_images']} scenes, {r['threads']} thread(s), median): one timestep "
        f"{c['single_t']:.3f} s, {len(r['timesteps'])} timesteps {c['multi_t']:.3f} s, ratio {c['ratio']:.2f}x. "
        f"Whole benchmark {r['work_s']:.0f} s; torch {r['torch']}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
