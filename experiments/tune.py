"""Choose the organism's per-method defaults on training scenes: `python -m experiments.tune`.

SD's defaults (t=300 and tau=1.1 for DiffSeg; t=50, tau=0.5 and a 32x32 tap for DiffCut) were tuned for
64x64 latents and do not transfer to 16x16 maps (a KL threshold scales with the number of bins). So each
method's parameters are chosen here by object-level Hungarian mIoU on scenes from `world.TRAIN_SEEDS`,
never on `world.EVAL_SEEDS`, and written to zsnb/organism/weights/defaults.json (`organism.DEFAULTS_FILE`)
with the scores behind the choice; `zsnb.registry` reads them as the organism's tuning layer. The adaptive
method's entry is chosen by `benchmarks/adaptive.py --write-defaults` (also on training scenes) and kept here.
"""

from __future__ import annotations

import argparse
import itertools
import json

from tqdm.auto import tqdm

from experiments.timesteps import HIERARCHY_DRAWS, LARGE_T, SMALL_T, best_small_large
from zsnb import registry, world, worldeval
from zsnb.backbones import Backbone, load_backbone
from zsnb.organism import DEFAULTS_FILE

N_SCENES = 96  # training scenes scored per setting
DIFFSEG_GRID = {
    "convention": [("none", t) for t in (50, 300, 500, 700, 850)]
    + [("seeded", t) for t in (25, 50, 100, 200, 300, 400, 500)],
    "kl_threshold": [0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8],
    "num_points": [4, 8, 16],
}
DIFFCUT_GRID = {
    "timestep": [25, 50, 100, 200],
    "tau": [0.2, 0.35, 0.5, 0.65, 0.8, 1.0, 1.2],
    "alpha": [5.0, 10.0],
}
HIERARCHY_THRESHOLDS: tuple[float, ...] = (0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.1, 0.2)
def grid_scores(backbone: Backbone, method: str, seeds: range, capture_settings: list[dict],
                settings: list[dict]) -> list[dict]:
    """Scores of registered `method` for every capture setting x every other setting, one capture each.

    Parameters start from the official ones (tuned=False), so a stored tuning never feeds itself. The settings
    of one capture setting share its capture (`zsnb.harness.segment_grid`).
    """
    results = []
    for fixed in tqdm(capture_settings, desc=method):
        base = registry.family_params(method, backbone.family, tuned=False, **fixed).record
        preds, scenes = worldeval.predict_grid(backbone, seeds, [(method, base.replace(**v)) for v in settings])
        for varied, p in zip(settings, preds, strict=True):
            results.append({**fixed, **varied, **worldeval.score(p, scenes)})
    return results


def best(results: list[dict], keys: tuple[str, ...]) -> dict:
    """The `keys` of the result with the highest object mIoU."""
    top = max(results, key=lambda r: r["miou_objects"])
    return {k: top[k] for k in keys}


def tune_diffseg(backbone: Backbone, seeds: range) -> tuple[dict, list[dict]]:
    """Best DiffSeg (noise, t, tau, grid) by object mIoU on `seeds`; also every setting's scores."""
    conventions = [{"noise": noise, "timestep": t} for noise, t in DIFFSEG_GRID["convention"]]
    merges = [{"kl_threshold": kl, "num_points": n}
              for kl, n in itertools.product(DIFFSEG_GRID["kl_threshold"], DIFFSEG_GRID["num_points"])]
    results = grid_scores(backbone, "diffseg", seeds, conventions, merges)
    return best(results, ("noise", "timestep", "kl_threshold", "num_points")), results


def tune_diffcut(backbone: Backbone, seeds: range) -> tuple[dict, list[dict]]:
    """Best DiffCut (tap, t, tau, alpha) by object mIoU on `seeds` without PAMR; PAMR kept if it helps."""
    taps = [names[0] for side, names in backbone.attention_layers("self").items()
            if side < backbone.latent_resolution and names[0].startswith("down_blocks")]
    captured = [{"tap": tap, "timestep": t} for tap, t in itertools.product(taps, DIFFCUT_GRID["timestep"])]
    cuts = [{"tau": tau, "alpha": alpha, "refine": False, "out_size": backbone.resolution}
            for tau, alpha in itertools.product(DIFFCUT_GRID["tau"], DIFFCUT_GRID["alpha"])]
    results = grid_scores(backbone, "diffcut", seeds, captured, cuts)
    chosen = best(results, ("tap", "timestep", "tau", "alpha"))
    top = max(r["miou_objects"] for r in results)
    with_pamr = grid_scores(backbone, "diffcut", seeds, [{k: chosen[k] for k in ("tap", "timestep")}],
                            [{"tau": chosen["tau"], "alpha": chosen["alpha"], "refine": True,
                              "out_size": backbone.resolution}])
    results += with_pamr
    return {**chosen, "refine": with_pamr[0]["miou_objects"] > top, "out_size": backbone.resolution}, results


def hierarchy_gaps(results: list[dict], kl: float) -> dict[str, float]:
    """Part gap (best small t minus best large t) and object gap (large minus small) of one DiffSeg threshold."""
    by_t = {r["timestep"]: r for r in results if r["kl_threshold"] == kl}
    gap = {}
    for level in ("parts", "objects"):
        small, large = best_small_large(by_t, f"miou_{level}")
        gap[level] = by_t[small][f"miou_{level}"] - by_t[large][f"miou_{level}"]
    return {"parts": gap["parts"], "objects": -gap["objects"]}


def tune_hierarchy(backbone: Backbone, seeds: range, diffseg: dict) -> tuple[dict, list[dict]]:
    """The one DiffSeg threshold at which seeded t moves the level most: max over tau of min(part, object gap).

    Maps are averaged over HIERARCHY_DRAWS noise draws; anchors and iterations are DiffSeg's tuned ones. The
    timestep sweeps of the benchmarks and notebooks 00 and 03 use this threshold at every t.
    """
    captured = [{"noise": "seeded", "draws": HIERARCHY_DRAWS, "timestep": t} for t in (*SMALL_T, *LARGE_T)]
    merges = [{"kl_threshold": kl, "num_points": diffseg["num_points"]} for kl in HIERARCHY_THRESHOLDS]
    results = grid_scores(backbone, "diffseg", seeds, captured, merges)
    gaps = {kl: hierarchy_gaps(results, kl) for kl in HIERARCHY_THRESHOLDS}
    kl = max(gaps, key=lambda k: min(gaps[k].values()))
    return {"noise": "seeded", "draws": HIERARCHY_DRAWS, "kl_threshold": kl, "num_points": diffseg["num_points"],
            "small_t": list(SMALL_T),
            "large_t": list(LARGE_T), "gaps_on_training_scenes": gaps[kl]}, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-scenes", type=int, default=N_SCENES)
    args = parser.parse_args()
    seeds = world.TRAIN_SEEDS[: args.n_scenes]
    backbone = load_backbone("organism")
    ds, ds_results = tune_diffseg(backbone, seeds)
    dc, dc_results = tune_diffcut(backbone, seeds)
    hi, hi_results = tune_hierarchy(backbone, seeds, ds)
    kept = json.loads(DEFAULTS_FILE.read_text()).get("adaptive") if DEFAULTS_FILE.exists() else None
    defaults = {"diffseg": ds, "diffcut": dc, "hierarchy": hi,
                "chosen_on": f"world.TRAIN_SEEDS[:{args.n_scenes}], object-level Hungarian mIoU"}
    if kept:  # chosen by benchmarks/adaptive.py --write-defaults, on training scenes too
        defaults["adaptive"] = kept
    DEFAULTS_FILE.write_text(json.dumps(defaults, indent=1) + "\n")
    (DEFAULTS_FILE.parent / "tuning.json").write_text(
        json.dumps({"diffseg": ds_results, "diffcut": dc_results, "hierarchy": hi_results}, indent=None) + "\n")
    print(json.dumps(defaults, indent=1))


if __name__ == "__main__":
    main()
