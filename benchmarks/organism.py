"""How well does the organism's attention group its world? `python benchmarks/organism.py`.

On world.EVAL_SEEDS (held out; defaults were chosen on training seeds), against object- and part-level
ground truth: DiffSeg and DiffCut with the organism's stored defaults, the same architecture with random
weights, RGB k-means given the true number of objects, and a timestep sweep of DiffSeg under both input
conventions (clean input with the timestep embedding only, and seeded noise at t). Writes
benchmarks/results/organism.json and organism.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans

from zsnb import diffseg, load_backbone, registry, similarity, world
from zsnb.worldeval import method_captures, predict, score, score_table

SWEEP_T = (0, 25, 50, 100, 200, 300, 500, 700)


def aggregates(backbone, seeds, params) -> list:
    """DiffSeg's aggregated (R, R, R, R) maps with `params` (its timestep and noise) for every scene of `seeds`."""
    return [diffseg.aggregate(cap.self_attention(params["timestep"], i))
            for scenes, cap in method_captures(backbone, "diffseg", seeds, params) for i in range(len(scenes))]


def relation_densities(aggs, scenes) -> dict[str, float]:
    """Mean attention density per similarity.RELATIONS of aggregated maps over their scenes."""
    rows = []
    for agg, s in zip(aggs, scenes, strict=True):
        r = agg.shape[0]
        rows.append(similarity.relation_density(agg.reshape(r * r, r * r), similarity.pool_labels(s.parts, r),
                                                similarity.pool_labels(s.objects, r)))
    return {k: float(np.nanmean([row[k] for row in rows])) for k in similarity.RELATIONS}


def kmeans_preds(scenes) -> list:
    """RGB k-means with K = the true number of objects (background included), seeded."""
    return [KMeans(len(np.unique(s.objects)), n_init=4, random_state=0).fit_predict(s.image.reshape(-1, 3))
            .reshape(s.objects.shape) for s in scenes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-scenes", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    seeds = world.EVAL_SEEDS[: args.n_scenes]
    trained, control = load_backbone("organism"), load_backbone("organism", weights="random")
    ds, dc = registry.params("diffseg", trained), registry.params("diffcut", trained)
    start = time.perf_counter()
    backbones = {"trained": trained, "random weights": control}
    rows = {}
    for method, label in (("diffseg", "DiffSeg"), ("diffcut", "DiffCut")):
        for name, bb in backbones.items():
            preds, scenes = predict(bb, method, seeds)
            rows[f"{label}, {name}"] = score(preds, scenes)
    rows["RGB k-means, K = true objects"] = score(kmeans_preds(scenes), scenes)
    rows["one segment"] = score([np.zeros_like(s.objects) for s in scenes], scenes)
    relations = {name: relation_densities(aggregates(bb, seeds, ds), scenes) for name, bb in backbones.items()}
    sweep = {noise: {t: score(*predict(trained, "diffseg", seeds, timestep=t, noise=noise)) for t in SWEEP_T}
             for noise in ("none", "seeded")}
    result = {"n_scenes": len(seeds), "seeds": f"world.EVAL_SEEDS[:{len(seeds)}]", "diffseg_defaults": ds,
              "diffcut_defaults": dc, "methods": rows, "attention_relations": relations, "timestep_sweep": sweep,
              "wall_s": round(time.perf_counter() - start, 1), "torch": torch.__version__,
              "threads": torch.get_num_threads()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "organism.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"# Organism benchmark ({len(seeds)} evaluation scenes)", "", score_table(rows)]
    lines += ["", "Where an object pixel's attention goes (DiffSeg's aggregated map; density: mass over the pixels' "
              "share of the map, 1 = uniform):", "", "| weights | " + " | ".join(similarity.RELATIONS) + " |",
              "|---|" + "---|" * len(similarity.RELATIONS)]
    lines += [f"| {name} | " + " | ".join(f"{d[k]:.2f}" for k in similarity.RELATIONS) + " |"
              for name, d in relations.items()]
    lines += ["", f"DiffSeg timestep sweep (kl_threshold {ds['kl_threshold']}, {ds['num_points']}² anchors):", "",
              "| input | t | mIoU objects | mIoU parts | segments |", "|---|---|---|---|---|"]
    inputs = {"none": "clean, t-embedding", "seeded": "seeded noise"}
    lines += [f"| {inputs[noise]} | {t} | {r['miou_objects']:.3f} | {r['miou_parts']:.3f} | {r['segments']:.1f} |"
              for noise, by_t in sweep.items() for t, r in by_t.items()]
    (args.out / "organism.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
