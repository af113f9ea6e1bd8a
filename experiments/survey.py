"""DiffSeg's intra- and inter-attention properties measured on `zsnb.world` scenes (`zsnb.similarity`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from zsnb import worldeval
from zsnb.memory import DEFAULT_BUDGET_GB
from zsnb.protocol import NOISE_SEED, Backbone, Needs
from zsnb.similarity import Survey, diffseg_views, own_mass, pair_kl, pool_labels, sample_pairs, views


def survey(backbone: Backbone, seeds: Sequence[int], timestep: int, levels: Sequence[str] = worldeval.LEVELS,
           n_pairs: int = 200, pair_seed: int = 0, batch: int | None = None, memory_gb: float = DEFAULT_BUDGET_GB,
           noise: str = "none", seed: int = NOISE_SEED, draws: int = 1, size: int | None = None) -> Survey:
    """Intra masses (every view) and pair KLs (resolution means and aggregate) on the scenes of `seeds`.

    Self-attention at `timestep` under noise, seed and draws (`zsnb.capture`), scenes at `size` (default the
    backbone's side). For level "parts", "sibling" pairs are drawn as same-object pairs and kept where their
    parts differ.
    """
    gen = torch.Generator().manual_seed(pair_seed)
    out = Survey()
    kl: dict[str, dict[str, dict[str, list]]] = {}
    needs = Needs((timestep,), noise, seed, draws, attention="self")
    for scenes, cap in worldeval.captures(backbone, seeds, needs, size, batch, False, memory_gb):
        for i, sc in enumerate(scenes):
            vs = views(cap.self_attention(timestep, i))
            pair_views = diffseg_views(vs)
            out.sides = {v: math.isqrt(m.shape[0]) for v, m in vs.items()}
            for level in levels:
                pooled = {r: pool_labels(getattr(sc, level), r) for r in sorted(set(out.sides.values()))}
                pairs = {r: sample_pairs(lab, n_pairs, gen) for r, lab in pooled.items()}
                if level == "parts":
                    objs = {r: pool_labels(sc.objects, r) for r in pooled}
                    same_obj = {r: sample_pairs(o, n_pairs, gen)[0] for r, o in objs.items()}
                    siblings = {r: p[pooled[r].flatten()[p[:, 0]] != pooled[r].flatten()[p[:, 1]]]
                                for r, p in same_obj.items()}
                for v, m in vs.items():
                    r = out.sides[v]
                    mass, chance = own_mass(m, pooled[r])
                    scores = [float(mass.mean()), float(chance.mean())]
                    out.intra.setdefault(level, {}).setdefault(v, []).append(scores)
                    if v in pair_views:
                        same, diff = pairs[r]
                        row = kl.setdefault(level, {}).setdefault(v, {})
                        row.setdefault("same", []).append(pair_kl(m, same))
                        row.setdefault("different", []).append(pair_kl(m, diff))
                        if level == "parts":  # same-object pairs that straddle a part boundary
                            row.setdefault("sibling", []).append(pair_kl(m, siblings[r]))
    out.intra = {lv: {v: np.array(a, dtype=float) for v, a in d.items()} for lv, d in out.intra.items()}
    out.inter = {lv: {v: {k: torch.cat(x).numpy() for k, x in d.items()} for v, d in dd.items()}
                 for lv, dd in kl.items()}
    return out
