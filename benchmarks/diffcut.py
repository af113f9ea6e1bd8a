"""Time DiffCut's recursive NCut at SSD-1B scale against one fp32 eigh of the same size; measure its stops.

Inputs (32 x 32 tokens x 1280 channels, as SSD-1B's E32 tap at 1024 px): "planted", six Voronoi regions
each with its own random centre plus noise; "smooth", a blurred random field with no true segments,
whose every region has cheap cuts, so recursion runs to the min_size / max_depth guards. Reference: one
fp32 `torch.linalg.eigh` of a 1024 x 1024 symmetric matrix, measured interleaved with the work, so a
busy machine slows both alike. Also times assign_concepts (32 -> 128) and PAMR at 128 x 128.

Stops: the official rule (NCut < tau) against the spectral-gap stop (`gap=diffcut.CHAIN_GAP`) on the
synthetic fields, plus "planted + smooth" (the six regions with a smooth field of the given std added,
which official recursion splinters), scored against the regions; and on the organism's real features
(its DiffCut defaults, `--scenes` evaluation scenes, full pipeline with PAMR, scored by
`worldeval.scene_scores`), with how much the final labels move when leaves are numbered in visiting order
instead of the official order.

    python benchmarks/diffcut.py [--out benchmarks/results] [--repeats 5] [--threads 1] [--scenes 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from timing import median_times

from zsnb import diffcut, world
from zsnb.metrics import segment_scores
from zsnb.pamr import pamr
from zsnb.parameters import DiffCutParams

SIDE: int = 32  # SSD-1B E32 grid at 1024 px
CHANNELS: int = 1280  # SSD-1B E32 width
SEGMENTS: int = 6
NOISE: float = 0.7  # per-channel noise std against unit-variance centres
SMOOTH_SIGMA: float = 3.0  # blur of the random field, in tokens
EVAL_SIZE: int = 128  # DiffCut's evaluation resolution
TARGET_EIGH: float = 4.0  # recursive NCut per image, in eigh-equivalents
SMOOTH_STDS: tuple[float, ...] = (1.0, 1.5)  # smooth variation added to the planted regions (centres: std 1)


def planted(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(SIDE, SIDE, CHANNELS) features and (SIDE, SIDE) truth: Voronoi cells, random centre + noise each."""
    g = torch.Generator().manual_seed(seed)
    sites = torch.rand(SEGMENTS, 2, generator=g) * SIDE
    pix = torch.cartesian_prod(torch.arange(SIDE) + 0.5, torch.arange(SIDE) + 0.5)  # (SIDE*SIDE, 2)
    truth = torch.cdist(pix, sites).argmin(1)
    feats = torch.randn(SEGMENTS, CHANNELS, generator=g)[truth]
    feats = feats + NOISE * torch.randn(SIDE * SIDE, CHANNELS, generator=g)
    return feats.reshape(SIDE, SIDE, CHANNELS), truth.reshape(SIDE, SIDE)


def smooth(seed: int) -> torch.Tensor:
    """(SIDE, SIDE, CHANNELS) Gaussian-blurred white noise: spatially coherent, but no true segments."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, CHANNELS, SIDE, SIDE, generator=g)
    radius = int(3 * SMOOTH_SIGMA)
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1) / SMOOTH_SIGMA) ** 2)
    kernel = (taps / taps.sum()).repeat(CHANNELS, 1, 1, 1)  # (C, 1, 1, K): separable, per channel
    x = F.conv2d(F.pad(noise, [radius, radius, 0, 0], mode="reflect"), kernel, groups=CHANNELS)
    x = F.conv2d(F.pad(x, [0, 0, radius, radius], mode="reflect"), kernel.transpose(2, 3), groups=CHANNELS)
    return x[0].permute(1, 2, 0)


def planted_smooth(seed: int, std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`planted` features plus a `smooth` field scaled to `std` per channel, and the planted truth."""
    feats, truth = planted(seed)
    field = smooth(seed + 1)
    return feats + std * field / field.std(), truth


def stop_rows(inputs: dict[str, tuple[torch.Tensor, torch.Tensor | None]]) -> list[dict]:
    """Segments (and agreement with the truth, where there is one) under the official and spectral-gap stops."""
    rows = []
    for name, (x, truth) in inputs.items():
        for gap in (None, diffcut.CHAIN_GAP):
            start = time.perf_counter()
            labels, nodes = diffcut.recursive_ncut_tree(x, gap=gap)
            row = {"input": name, "gap": gap, "s": time.perf_counter() - start, "segments": int(labels.max()) + 1,
                   "gap_stops": sum(n.stop == "no spectral gap" for n in nodes)}
            if truth is not None:
                row.update({k: v for k, v in segment_scores(labels, truth).items() if k in ("acc", "miou")})
            rows.append(row)
    return rows


def refined(leaves: torch.Tensor, feats: torch.Tensor, image: torch.Tensor, p: DiffCutParams) -> torch.Tensor:
    """DiffCut's stages after the cut (`diffcut.label_pixels`) on given leaf labels, with the record's values."""
    return diffcut.label_pixels(leaves, feats, image, p.out_size, p.refine, p.pamr_iterations, p.pamr_dilations)


def organism_rows(scenes: int) -> tuple[list[dict], dict]:
    """Organism, its DiffCut defaults, EVAL_SEEDS[:scenes]: scores by stop; visiting vs official numbering.

    The official stop's labels are the registry's DiffCut (`zsnb.registry.segment_capture`); leaves cut another
    way (the gap stop, visiting order) go through the same stages after the cut (`refined`).
    """
    from zsnb import load_backbone, registry
    from zsnb.worldeval import scene_scores, scene_tensor

    backbone = load_backbone("organism")
    p = registry.params("diffcut", backbone).record
    drawn = [world.scene(s) for s in world.EVAL_SEEDS[:scenes]]
    cap = backbone.capture(scene_tensor(drawn), p.needs())

    rows, moved = [], []
    for gap in (None, diffcut.CHAIN_GAP):
        scores, leaves = [], []
        for i, scene in enumerate(drawn):
            feats = cap.features(p.timestep, p.tap, i)
            labels, nodes = diffcut.recursive_ncut_tree(feats, p.tau, p.alpha, gap=gap)
            if gap is None:
                out = registry.segment_capture("diffcut", cap, i, p, scene.objects.shape)
                visiting = torch.empty_like(labels)
                for k, leaf in enumerate(n for n in nodes if n.stop != "split"):
                    visiting[leaf.mask] = k
                moved.append(1 - segment_scores(refined(visiting, feats, cap.images[i], p), out)["acc"])
            else:
                out = refined(labels, feats, cap.images[i], p)
            scores.append(scene_scores(out, scene.objects, scene.parts))
            leaves.append(int(labels.max()) + 1)
        rows.append({"gap": gap, "leaves": float(np.mean(leaves)),
                     **{k: float(np.mean([r[k] for r in scores])) for k in scores[0]}})
    numbering = {"scenes": scenes, "tau": p.tau, "pixels_moved_mean": float(np.mean(moved)),
                 "pixels_moved_max": float(np.max(moved))}
    return rows, numbering


def photo_rows() -> list[dict]:
    """Leaves per stop on the ViT's final-LayerNorm tokens of the shipped photos (its registry tau and alpha)."""
    from zsnb import capture, load_backbone, photos, registry

    backbone = load_backbone("vit-s")
    p = registry.params("diffcut", backbone).record
    rows = []
    for name in photos.NAMES:
        # the whole photo resized to the ViT's side, as zsnb.segment feeds it (no centre crop)
        feats = capture(backbone, photos.image(name), p.timestep, features=p.tap, attention=None, size=p.size
                        ).features(p.timestep, p.tap)
        leaves = {gap: diffcut.recursive_ncut_tree(feats, p.tau, p.alpha, gap=gap)[0]
                  for gap in (None, diffcut.CHAIN_GAP)}
        rows.append({"photo": name, **{f"leaves_gap_{gap}": int(x.max()) + 1 for gap, x in leaves.items()}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--repeats", type=int, default=5)
    # One thread by default: ratios are then stable on a shared CPU, where OpenMP threads spin-wait for
    # each other and a 2-thread eigh was measured anywhere from 0.07 s to 15 s.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=20, help="organism evaluation scenes for the stop measurement")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    sym = torch.randn(SIDE * SIDE, SIDE * SIDE, generator=torch.Generator().manual_seed(args.seed))
    sym = (sym + sym.T) / 2

    def eigh() -> object:
        return torch.linalg.eigh(sym)

    feats, truth = planted(args.seed)
    inputs = {"planted (6 segments)": feats, "smooth field (over-splitting)": smooth(args.seed)}
    rows = []
    for name, x in inputs.items():
        for solver in ("auto", "dense"):
            labels, nodes = diffcut.recursive_ncut_tree(x, solver=solver)
            work_s, eigh_s = median_times([lambda x=x, s=solver: diffcut.recursive_ncut(x, solver=s), eigh],
                                          args.repeats)
            rows.append({"step": f"recursive NCut, {name}, solver={solver}", "s": work_s, "eigh_s": eigh_s,
                         "eigh_equivalents": work_s / eigh_s, "segments": int(labels.max()) + 1,
                         "nodes": len(nodes), "depth": max(n.depth for n in nodes)})
    labels = diffcut.recursive_ncut(feats)
    image = torch.rand(3, EVAL_SIZE, EVAL_SIZE, generator=torch.Generator().manual_seed(args.seed))
    size = EVAL_SIZE
    coarse = diffcut.assign_concepts(labels, feats, size)
    steps = {f"assign_concepts {SIDE} -> {EVAL_SIZE}": lambda: diffcut.assign_concepts(labels, feats, size),
             f"PAMR {EVAL_SIZE} x {EVAL_SIZE}, 10 it., dilations 1-8": lambda: pamr(image, coarse)}
    for name, fn in steps.items():
        work_s, eigh_s = median_times([fn, eigh], args.repeats)
        rows.append({"step": name, "s": work_s, "eigh_s": eigh_s, "eigh_equivalents": work_s / eigh_s})

    fields = {"planted (6 segments)": (feats, truth), "smooth field (no segments)": (smooth(args.seed), None)}
    fields.update({f"planted + smooth std {std:g}": planted_smooth(args.seed, std) for std in SMOOTH_STDS})
    stops = stop_rows(fields)
    organism, numbering = organism_rows(args.scenes)
    photo = photo_rows()

    result = {"torch": torch.__version__, "threads": args.threads, "repeats": args.repeats, "tau": 0.5,
              "alpha": 10.0, "target_eigh_equivalents": TARGET_EIGH, "rows": rows, "stops": stops,
              "organism_stops": organism, "organism_numbering": numbering, "photo_stops": photo}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "diffcut.json").write_text(json.dumps(result, indent=2) + "\n")
    table = ["| step | median s | x eigh | segments | nodes | depth |", "|---|---|---|---|---|---|"]
    table += [f"| {r['step']} | {r['s']:.4f} | {r['eigh_equivalents']:.2f} | {r.get('segments', '')} | "
              f"{r.get('nodes', '')} | {r.get('depth', '')} |" for r in rows]
    eigh_s = statistics.median(r["eigh_s"] for r in rows)
    stop_table = ["| input | gap | segments | gap stops | agreement | mIoU | s |", "|---|---|---|---|---|---|---|"]
    stop_table += [f"| {r['input']} | {r['gap']} | {r['segments']} | {r['gap_stops']} | "
                   f"{r.get('acc', float('nan')):.3f} | {r.get('miou', float('nan')):.3f} | {r['s']:.2f} |"
                   for r in stops]
    org_table = ["| gap | leaves | segments | mIoU objects | ARI objects | mIoU parts | ARI parts |",
                 "|---|---|---|---|---|---|---|"]
    org_table += [f"| {r['gap']} | {r['leaves']:.2f} | {r['n_pred_objects']:.2f} | {r['miou_objects']:.3f} | "
                  f"{r['ari_objects']:.3f} | {r['miou_parts']:.3f} | {r['ari_parts']:.3f} |" for r in organism]
    (args.out / "diffcut.md").write_text(
        f"# DiffCut benchmark\n\ntorch {result['torch']}, {args.threads} threads, median of {args.repeats} "
        f"(interleaved with the reference); tau 0.5, alpha 10, {SIDE} x {SIDE} tokens x {CHANNELS} channels. "
        f"Reference: fp32 eigh of a {SIDE * SIDE} x {SIDE * SIDE} symmetric matrix, median {eigh_s:.4f} s. "
        f"Target <= {TARGET_EIGH:g} eigh-equivalents per image.\n\n" + "\n".join(table) + "\n"
        f"\n## Stops: NCut < tau (gap None, official) and the spectral-gap stop (gap {diffcut.CHAIN_GAP})\n\n"
        "Synthetic fields, tau 0.5; agreement = Hungarian-matched token accuracy against the planted regions.\n\n"
        + "\n".join(stop_table) + "\n\n"
        f"Organism, its DiffCut defaults (tau {numbering['tau']}), {args.scenes} evaluation scenes, with PAMR; "
        "means over scenes.\n\n" + "\n".join(org_table) + "\n\n"
        "Leaves numbered in visiting order instead of the official order move "
        f"{100 * numbering['pixels_moved_mean']:.2f}% of the final pixels on average "
        f"(at most {100 * numbering['pixels_moved_max']:.2f}% in one scene), after matching labels.\n\n"
        "Real photos, the ViT's final-LayerNorm tokens (16 x 16 at 224 px), its registry tau and alpha; leaves:\n\n"
        f"| photo | gap None | gap {diffcut.CHAIN_GAP} |\n|---|---|---|\n"
        + "\n".join(f"| {r['photo']} | {r['leaves_gap_None']} | {r[f'leaves_gap_{diffcut.CHAIN_GAP}']} |"
                    for r in photo) + "\n")
    print("\n".join(table + stop_table + org_table))


if __name__ == "__main__":
    main()
