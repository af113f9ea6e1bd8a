"""The method registry: each segmentation method is one `Method` record; `segment()` is the one entry point.

A record holds the method's official parameters, what differs per backbone family (at least the input
`size`, the side the official code feeds the backbone), the papers' per-dataset settings, their published
numbers, what it needs captured, and `segment_capture(cap, index, params, out_hw) -> (H, W) labels`, a
plain function of its algorithm module. Parameters resolve in one order (`params`): official, the
family's, the dataset's, the organism's tuned defaults (organism/weights/defaults.json), the caller's.

    labels = zsnb.segment("diffcut", backbone, image, tau=0.6)   # (H, W) int64 at the image's own size
    zsnb.methods()                                               # {method: {family: parameters}}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from zsnb import diffcut, diffseg, hierarchy, organism, randomwalk, vit
from zsnb.backbones import Backbone
from zsnb.errors import UnknownNameError, ZsnbError
from zsnb.extract import NOISE_SEED, Capture, capture
from zsnb.images import ImageLike, image_tensor, resize


@dataclass(frozen=True)
class Needs:
    """What a method needs captured: `zsnb.capture` arguments besides the backbone, images and size."""

    timesteps: tuple[int, ...]
    noise: str
    seed: int
    attention: str | None = None  # "self", "cross", "both" or None
    features: tuple[str, ...] = ()
    stop_after: str | None = None
    draws: int = 1  # noise draws the maps and features are averaged over (zsnb.capture)


@dataclass(frozen=True)
class Method:
    """One segmentation method: defaults, what to capture, and how a capture becomes labels."""

    name: str
    summary: str
    defaults: Mapping[str, Any]  # official parameters, every family
    families: Mapping[str, Mapping[str, Any]]  # backbone family -> what differs there; each holds "size"
    needs: Callable[[Mapping[str, Any]], Needs]
    segment_capture: Callable[[Capture, int, Mapping[str, Any], tuple[int, int]], torch.Tensor]
    datasets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # the papers' per-dataset settings
    papers: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)  # (backbone, dataset)
    label_key: str = "size"  # parameter holding the evaluation's label side (None in it: the input size)
    crop_shrink: int = 0  # the evaluation crops a square of side min(h, w) - crop_shrink
    unsupported: Mapping[str, str] = field(default_factory=dict)  # backbone family -> why the method cannot run


REGISTRY: dict[str, Method] = {}


def register(method: Method, replace: bool = False) -> Method:
    """Add `method` to the registry (replace=True overwrites a method of the same name); returns it."""
    if method.name in REGISTRY and not replace:
        raise ZsnbError(f"a method named {method.name!r} is registered already; pick another name or pass "
                        "replace=True.")
    for family, extra in method.families.items():
        if "size" not in {**method.defaults, **extra}:
            raise ZsnbError(f"method {method.name!r} has no input 'size' for family {family!r}; add one.")
    REGISTRY[method.name] = method
    return method


def get(name: str) -> Method:
    """The registered method `name`."""
    if name not in REGISTRY:
        raise UnknownNameError(f"unknown method {name!r}; registered: {', '.join(REGISTRY)}.")
    return REGISTRY[name]


def _check_keys(given: Iterable[str], valid: Mapping[str, Any], what: str) -> None:
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ZsnbError(f"unknown {what} {unknown}; valid keys are {sorted(valid)}.")


def family_params(name: str, family: str, dataset: str | None = None, tuned: bool = True,
                  **overrides: Any) -> dict[str, Any]:
    """Parameters of method `name` on a backbone family (and dataset), with keyword overrides applied.

    tuned=False leaves out the organism's tuned defaults (what `zsnb.organism.tune` starts from).
    """
    method = get(name)
    if family in method.unsupported:
        raise ZsnbError(f"method {name!r} does not apply to a {family!r} backbone: {method.unsupported[family]}")
    if family not in method.families:
        raise ZsnbError(f"method {name!r} has no defaults for backbone family {family!r} (it has "
                        f"{sorted(method.families)}); add the family to its registry entry.")
    params = {**method.defaults, **method.families[family], **method.datasets.get(dataset, {})}
    if family == "organism" and tuned:  # the one place the organism's tuned defaults replace the official ones
        stored = organism.method_defaults().get(name, {})
        _check_keys(stored, params, f"keys in {organism.DEFAULTS_FILE.name} for {name!r}")
        params.update(stored)
    _check_keys(overrides, params, f"overrides for {name!r}")
    params.update(overrides)
    return params


def params(name: str, backbone: Backbone, dataset: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Parameters of method `name` on this backbone (its family), dataset and keyword overrides."""
    return family_params(name, backbone.family, dataset, **overrides)


def defaults(backbone: Backbone) -> dict[str, dict[str, Any]]:
    """{method: parameters} for every registered method that runs on this backbone's family."""
    return {name: params(name, backbone) for name, m in REGISTRY.items() if backbone.family in m.families}


def methods() -> dict[str, dict[str, dict[str, Any]]]:
    """Every registered method with its default parameters per backbone family: {method: {family: params}}."""
    return {name: {family: family_params(name, family) for family in m.families} for name, m in REGISTRY.items()}


def capture_for(name: str, backbone: Backbone, images: torch.Tensor, params: Mapping[str, Any]) -> Capture:
    """Capture what method `name` needs from (N, 3, S, S) images, fed at params["size"]."""
    n = get(name).needs(params)
    return capture(backbone, images, n.timesteps, noise=n.noise, seed=n.seed, draws=n.draws, attention=n.attention,
                   features=n.features, stop_after=n.stop_after, size=params["size"])


def segment(method: str, backbone: Backbone, image: ImageLike, **overrides: Any) -> torch.Tensor:
    """Segment one image (path, PIL, (H, W, 3) array, (3, H, W) or (H, W, 3) tensor) -> (H, W) int64 labels.

    The whole image is resized to the method's square input (params "size"; no crop, so every pixel gets
    a label); labels come back at the image's own (H, W). Overrides replace the method's parameters.
    """
    p = params(method, backbone, **overrides)
    x = image_tensor(image)  # (3, H, W)
    cap = capture_for(method, backbone, resize(x, (p["size"], p["size"]))[None], p)
    return get(method).segment_capture(cap, 0, p, tuple(x.shape[1:])).long().cpu()


def _diffseg_needs(p: Mapping[str, Any]) -> Needs:
    return Needs((p["timestep"],), p["noise"], p["seed"], attention="self", draws=p["draws"])


def _diffcut_needs(p: Mapping[str, Any]) -> Needs:
    return Needs((p["timestep"],), p["noise"], p["seed"], features=(p["tap"],), stop_after="auto",
                 draws=p["draws"])


def _randomwalk_needs(p: Mapping[str, Any]) -> Needs:
    return Needs(tuple(sorted(p["timesteps"])), p["noise"], p["seed"], attention="self", draws=p["draws"])


def _adaptive_needs(p: Mapping[str, Any]) -> Needs:
    return Needs(tuple(sorted(p["timesteps"])), p["noise"], p["seed"], attention="self",
                 features=(p["tap"],), draws=p["draws"])


# Official settings (the papers' code). Sizes: DiffSeg feeds SD1.x at 512; DiffCut feeds 1024 on SSD-1B and on
# SD1.4 alike; the organism sees its world at its own side.
DIFFSEG: dict[str, Any] = {"timestep": 300, "noise": "none", "seed": NOISE_SEED, "draws": 1, "kl_threshold": 1.1,
                           "num_points": 16, "iterations": 3, "refine": False, "layers": None}  # None: all layers
DIFFCUT: dict[str, Any] = {"timestep": 50, "noise": "seeded", "seed": NOISE_SEED, "draws": 1,
                           "tap": diffcut.FEATURE_TAP, "tau": 0.5, "alpha": 10.0, "refine": True, "out_size": 128,
                           "pamr_iterations": 10, "pamr_dilations": (1, 2, 4, 8)}
# The ViT ("vit" family, zsnb.vit): defaults chosen by eye at 224 px on the three shipped photos (zsnb.photos),
# never on evaluation data; segment counts
# astronaut / chelsea / coffee. DiffSeg on the last block's attention: KL 0.7 gives 7/2/3 segments, 0.9 4/1/3, 1.0
# 3/2/3 (face and hair, suit, background; cat, the photo's lower edge; cup, saucer, table), 1.1 3/1/2, 1.3 1/1/1;
# all 12 blocks averaged give 1-3 segments at every KL (the early blocks' local attention blurs the objects
# together). DiffCut on the final-LayerNorm tokens, alpha 10, PAMR: tau 0.2 gives 3/2/3, 0.3 3/2/5 (face and hair,
# suit, background; cat, a strip of background; cup with coffee, saucer, table and two slivers), 0.5 4/3/10 (splits
# table and background).
VIT_DIFFSEG: dict[str, Any] = {"size": vit.RESOLUTION, "timestep": 0, "kl_threshold": 1.0, "layers": (vit.LAYERS[-1],)}
VIT_DIFFCUT: dict[str, Any] = {"size": vit.RESOLUTION, "timestep": 0, "noise": "none", "tap": "last", "tau": 0.3,
                               "out_size": None}
_DIFFSEG_SRC = "Tian et al., CVPR 2024 (accuracy unverified, see docs/reference.md)"
_DIFFCUT_SRC = "Couairon et al., NeurIPS 2024, Table {} (with PAMR)"

register(Method(
    "diffseg", "DiffSeg: merge self-attention maps by symmetric KL (Tian et al., CVPR 2024)", DIFFSEG,
    {"sd1": {"size": 512}, "sdxl": {"size": 1024}, "organism": {"size": organism.RESOLUTION}, "vit": VIT_DIFFSEG},
    _diffseg_needs, diffseg.segment_capture,
    datasets={"cityscapes-27": {"kl_threshold": 0.9}},  # the paper's Cityscapes setting (COCO: 1.1)
    papers={("sd14", "coco-stuff-27"): {"miou": 43.6, "acc": 72.5, "source": _DIFFSEG_SRC + ", tau 1.1"},
            ("sd14", "cityscapes-27"): {"miou": 21.2, "acc": 76.0, "source": _DIFFSEG_SRC + ", tau 0.9"}}))

register(Method(
    "diffcut", "DiffCut: recursive NCut on encoder features, concepts, PAMR (Couairon et al., NeurIPS 2024)",
    DIFFCUT, {"sd1": {"size": 1024}, "sdxl": {"size": 1024}, "organism": {"size": organism.RESOLUTION},
              "vit": VIT_DIFFCUT},
    _diffcut_needs, diffcut.segment_capture,
    papers={("ssd-1b", "coco-stuff-27"): {"miou": 49.1, "source": _DIFFCUT_SRC.format(1)},
            ("ssd-1b", "cityscapes-27"): {"miou": 30.6, "source": _DIFFCUT_SRC.format(1)},
            ("ssd-1b", "voc2012"): {"miou": 65.2, "source": _DIFFCUT_SRC.format(1)},
            ("sd14", "coco-stuff-27"): {"miou": 45.2, "source": _DIFFCUT_SRC.format(7)},
            ("sd14", "cityscapes-27"): {"miou": 24.5, "source": _DIFFCUT_SRC.format(7)},
            ("sd14", "voc2012"): {"miou": 57.5, "source": _DIFFCUT_SRC.format(7)}},
    label_key="out_size", crop_shrink=1))

register(Method(
    "adaptive", "ours: per-pixel adaptive timestep t*, then DiffSeg or NCut grouping (zsnb.hierarchy)",
    {"timesteps": (25, 50, 100, 200, 300, 500), "noise": "none", "seed": NOISE_SEED, "draws": 1,
     "grouping": "diffseg",
     "fusion": "random_walk", "criterion": "entropy", "target": None, "slack": hierarchy.DEFAULT_SLACK,
     "temperature": hierarchy.DEFAULT_TEMPERATURE,
     "tap": DIFFCUT["tap"], **{k: DIFFSEG[k] for k in ("kl_threshold", "num_points", "iterations")},
     **{k: DIFFCUT[k] for k in ("tau", "alpha")}},
    {"sd1": {"size": 512}, "sdxl": {"size": 1024}, "organism": {"size": organism.RESOLUTION}},
    _adaptive_needs, hierarchy.segment_capture,
    unsupported={"vit": "a ViT has no timesteps, so there is no t* to choose per pixel."}))

# No official code and no paper defaults could be read (see zsnb.randomwalk): every value here is ours, per family.
register(Method(
    "randomwalk", "random-walk NCut on self-attention, P^k, automatic threshold (after Ivanova et al., WACV 2026)",
    {"noise": "none", "seed": NOISE_SEED, "draws": 1, **randomwalk.SD_DEFAULTS},
    {"sd1": {"size": 512}, "sdxl": {"size": 1024},
     "organism": {"size": organism.RESOLUTION, **randomwalk.ORGANISM_DEFAULTS},
     "vit": {"size": vit.RESOLUTION, **randomwalk.VIT_DEFAULTS}},
    _randomwalk_needs, randomwalk.segment_capture))
