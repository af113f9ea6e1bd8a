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

from zsnb import diffcut, diffseg, load_backbone, similarity, world
from zsnb.worldeval import captures, score

SWEEP_T = (0, 25, 50, 100, 200, 300, 500, 700)


def aggregates(backbone, seeds, t, noise) -> tuple[list, list]:
    """DiffSeg's aggregated (R, R, R, R) maps at (t, noise) for every scene of `seeds`, and the scenes."""
    aggs, scenes = [], []
    for batch, cap in captures(backbone, seeds, (t,), noise=noise, progress=False):
        aggs += [diffseg.aggregate(cap.self_attention(t, i)) for i in range(len(batch))]
        scenes += batch
    return aggs, scenes


def diffseg_preds(aggs, params, size) -> list:
    """DiffSeg labels (size, size) from aggregated maps with the given merge parameters."""
    return [diffseg.segment(a, kl_threshold=params["kl_threshold"], num_points=params["num_points"],
                            iterations=params["iterations"], out_size=size) for a in aggs]


def diffcut_preds(backbone, seeds, params) -> tuple[list, list]:
    """DiffCut labels for every scene of `seeds` with the given parameters."""
    preds, scenes, t = [], [], params["timestep"]
    for batch, cap in captures(backbone, seeds, (t,), noise="seeded", seed=params["seed"], attention=None,
                               features=(params["tap"],), stop_after="auto", progress=False):
        for i, s in enumerate(batch):
            image = torch.from_numpy(s.image).permute(2, 0, 1)
            preds.append(diffcut.segment(cap.features(t, params["tap"], i), image=image, tau=params["tau"],
                                         alpha=params["alpha"], out_size=backbone.resolution,
                                         refine=params["refine"]))
        scenes += batch
    return preds, scenes


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
    ds, dc = trained.defaults["diffseg"], trained.defaults["diffcut"]
    start = time.perf_counter()
    rows = {}
    at_default = {name: aggregates(bb, seeds, ds["timestep"], ds["noise"])
                  for name, bb in (("trained", trained), ("random weights", control))}
    scenes = at_default["trained"][1]
    for name, (aggs, _) in at_default.items():
        rows[f"DiffSeg, {name}"] = score(diffseg_preds(aggs, ds, trained.resolution), scenes)
    rows["DiffCut, trained"] = score(diffcut_preds(trained, seeds, dc)[0], scenes)
    rows["DiffCut, random weights"] = score(diffcut_preds(control, seeds, dc)[0], scenes)
    rows["RGB k-means, K = true objects"] = score(kmeans_preds(scenes), scenes)
    rows["one segment"] = score([np.zeros_like(s.objects) for s in scenes], scenes)
    relations = {name: relation_densities(*run) for name, run in at_default.items()}
    sweep = {noise: {t: score(diffseg_preds(aggregates(trained, seeds, t, noise)[0], ds, trained.resolution), scenes)
                     for t in SWEEP_T} for noise in ("none", "seeded")}
    result = {"n_scenes": len(seeds), "seeds": f"world.EVAL_SEEDS[:{len(seeds)}]", "diffseg_defaults": ds,
              "diffcut_defaults": dc, "methods": rows, "attention_relations": relations, "timestep_sweep": sweep,
              "wall_s": round(time.perf_counter() - start, 1), "torch": torch.__version__,
              "threads": torch.get_num_threads()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "organism.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"# Organism benchmark ({len(seeds)} evaluation scenes)", "",
             "| method | mIoU objects | mIoU parts | ARI objects | segments |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {r['miou_objects']:.3f} ± {r['miou_objects_se']:.3f} | {r['miou_parts']:.3f} ± "
              f"{r['miou_parts_se']:.3f} | {r['ari_objects']:.3f} | {r['segments']:.1f} |" for name, r in rows.items()]
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
