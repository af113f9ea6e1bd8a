"""The method registry: the one seam between backbones (what is captured) and algorithms (tensors in, labels out).

Each segmentation method is one `Method`: its parameter record (`zsnb.parameters`, official defaults), what
differs per backbone family and per dataset, the papers' published numbers, and its adaptor, a small function
from a `Capture` to the algorithm's tensor call. `params` resolves a run's values with their provenance;
`segment` is the one-image entry point; `zsnb.harness` runs grids of settings on many images.

    labels = zsnb.segment("diffcut", backbone, image, tau=0.6)   # (H, W) int64 at the image's own size
    record, sources = zsnb.params("diffcut", backbone)           # typed record, and where each value came from
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from zsnb import diffcut, diffseg, hierarchy, organism, randomwalk, vit
from zsnb.errors import UnknownNameError, ZsnbError
from zsnb.images import ImageLike, image_tensor, load_image
from zsnb.parameters import AdaptiveParams, DiffCutParams, DiffSegParams, Params, RandomWalkParams, Resolved, resolve
from zsnb.precision import as_real
from zsnb.protocol import Backbone, Capture

Adaptor = Callable[[Capture, int, Any, tuple[int, int]], torch.Tensor]


@dataclass(frozen=True)
class Method:
    """One segmentation method: its record, what differs per family and dataset, and its adaptor."""

    name: str
    summary: str
    record: type[Params]  # defaults: the official values
    families: Mapping[str, Mapping[str, Any]]  # backbone family -> values that differ there
    segment_capture: Adaptor  # (capture, image index, record, (H, W)) -> (H, W) labels
    family_notes: Mapping[str, str] = field(default_factory=dict)  # family -> why its values differ
    datasets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # the papers' per-dataset settings
    papers: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)  # (backbone, dataset)
    label_key: str = "size"  # field holding the evaluation's label side (None in it: the input size)
    crop_shrink: int = 0  # the evaluation crops a square of side min(h, w) - crop_shrink
    unsupported: Mapping[str, str] = field(default_factory=dict)  # backbone family -> why the method cannot run


REGISTRY: dict[str, Method] = {}


def register(method: Method, replace: bool = False) -> Method:
    """Add `method` to the registry (replace=True overwrites a method of the same name); returns it."""
    if method.name in REGISTRY and not replace:
        raise ZsnbError(f"a method named {method.name!r} is registered already; pick another name or pass "
                        "replace=True.")
    for family, values in method.families.items():
        resolve(method.record, {f"family {family}": values})  # unknown keys or bad types fail here
    REGISTRY[method.name] = method
    return method


def get(name: str) -> Method:
    """The registered method `name`."""
    if name not in REGISTRY:
        raise UnknownNameError(f"unknown method {name!r}; registered: {', '.join(REGISTRY)}.")
    return REGISTRY[name]


def family_params(name: str, family: str, dataset: str | None = None, tuned: bool = True,
                  **overrides: Any) -> Resolved:
    """Method `name`'s record on a backbone family (and dataset), caller's overrides last, with provenance.

    tuned=False leaves out the organism's tuned values (what tuning starts from).
    """
    method = get(name)
    if family in method.unsupported:
        raise ZsnbError(f"method {name!r} does not apply to a {family!r} backbone: {method.unsupported[family]}")
    if family not in method.families:
        raise ZsnbError(f"method {name!r} has no values for backbone family {family!r} (it has "
                        f"{sorted(method.families)}); add the family to its registry entry.")
    note = method.family_notes.get(family)
    layers = {f"family {family}" + (f": {note}" if note else ""): method.families[family],
              f"dataset {dataset}": method.datasets.get(dataset, {})}
    if family == "organism" and tuned:  # the one place the organism's tuned values replace the official ones
        layers[f"organism tuning ({organism.DEFAULTS_FILE.name})"] = organism.method_defaults().get(name, {})
    layers["caller"] = overrides
    return resolve(method.record, layers)


def params(name: str, backbone: Backbone, dataset: str | None = None, **overrides: Any) -> Resolved:
    """Method `name`'s record on this backbone (its family), dataset and overrides, with provenance."""
    return family_params(name, backbone.family, dataset, **overrides)


def methods() -> dict[str, dict[str, Params]]:
    """Every registered method's default record per backbone family: {method: {family: record}}."""
    return {name: {family: family_params(name, family).record for family in m.families}
            for name, m in REGISTRY.items()}


def segment(method: str, backbone: Backbone, image: ImageLike, **overrides: Any) -> torch.Tensor:
    """Segment one image (path, PIL, (H, W, 3) array, (3, H, W) or (H, W, 3) tensor) -> (H, W) int64 labels.

    The whole image is resized to the method's square input (`zsnb.load_image`; no crop, so every pixel gets
    a label); labels come back at the image's own (H, W). Overrides replace the method's parameters.
    """
    p = params(method, backbone, **overrides).record
    x = image_tensor(image)  # (3, H, W)
    cap = backbone.capture(load_image(x, p.size)[None], p.needs())
    return get(method).segment_capture(cap, 0, p, tuple(x.shape[1:])).long().cpu()


def _self_maps(cap: Capture, t: int, index: int, layers: tuple[str, ...] | None) -> dict[str, torch.Tensor]:
    """{layer: (Q, Q)} self-attention of one image at t on the CPU, only `layers` (None: all)."""
    return {k: as_real(v).cpu() for k, v in cap.self_attention(t, index).items() if layers is None or k in layers}


def _diffseg(cap: Capture, index: int, p: DiffSegParams, out_hw: tuple[int, int]) -> torch.Tensor:
    aggregated = diffseg.aggregate(_self_maps(cap, p.timestep, index, p.layers))
    return diffseg.segment(aggregated, kl_threshold=p.kl_threshold, num_points=p.num_points,
                           iterations=p.iterations, refine=p.refine, out_size=out_hw)


def _diffcut(cap: Capture, index: int, p: DiffCutParams, out_hw: tuple[int, int]) -> torch.Tensor:
    out_hw = diffseg.size_pair(out_hw, "out_hw")
    labels = diffcut.segment(cap.features(p.timestep, p.tap, index), image=cap.images[index], tau=p.tau,
                             alpha=p.alpha, out_size=p.out_size or out_hw, refine=p.refine,
                             pamr_iterations=p.pamr_iterations, pamr_dilations=p.pamr_dilations)
    if labels.shape != out_hw:  # the official evaluation size (out_size) differs from the image's
        labels = torch.nn.functional.interpolate(labels[None, None].float(), size=out_hw, mode="nearest-exact")[0, 0]
    return labels.long()


def _randomwalk(cap: Capture, index: int, p: RandomWalkParams, out_hw: tuple[int, int]) -> torch.Tensor:
    aggs = [diffseg.aggregate(_self_maps(cap, t, index, p.layers)) for t in p.timesteps]
    return randomwalk.segment(sum(aggs) / len(aggs), k=p.k, graph=p.graph, threshold=p.threshold, out_size=out_hw)


def _adaptive(cap: Capture, index: int, p: AdaptiveParams, out_hw: tuple[int, int]) -> torch.Tensor:
    ts = sorted(p.timesteps)
    maps = {t: cap.self_attention(t, index) for t in ts}
    features = None if p.fusion == "attention" else {t: cap.features(t, p.tap, index) for t in ts}
    return hierarchy.adaptive_segment(
        maps, features, out_hw, grouping=p.grouping, pipeline=p.pipeline, criterion=p.criterion, knob=p.knob,
        fusion=p.fusion, temperature=p.temperature, kl_threshold=p.kl_threshold, num_points=p.num_points,
        iterations=p.iterations, tau=p.tau, alpha=p.alpha)[0]


def segment_capture(method: str, cap: Capture, index: int, record: Params, out_hw: tuple[int, int]) -> torch.Tensor:
    """Image `index` of a capture holding what `record.needs()` asks for -> (H, W) = out_hw long labels."""
    return get(method).segment_capture(cap, index, record, out_hw)


_DIFFSEG_SRC = "Tian et al., CVPR 2024 (accuracy unverified, see docs/reference.md)"
_DIFFCUT_SRC = "Couairon et al., NeurIPS 2024, Table {} (with PAMR)"
_SIZES = {"sd1": {"size": 512}, "sdxl": {"size": 1024}, "organism": {"size": organism.RESOLUTION}}
_VIT = {"size": vit.RESOLUTION, "timestep": 0}  # the ViT's native side; its one "timestep" is only a key
_VIT_LAST = (vit.LAYERS[-1],)  # the last block: averaging all 12 blurs objects together
_VIT_NOTE = "chosen by eye on the shipped photos, never on evaluation data (docs/reference.md#vit-defaults)"

register(Method(
    "diffseg", "DiffSeg: merge self-attention maps by symmetric KL (Tian et al., CVPR 2024)", DiffSegParams,
    {**_SIZES, "vit": {**_VIT, "kl_threshold": 1.0, "layers": _VIT_LAST}}, _diffseg,
    family_notes={"sdxl": "DiffCut's SDXL input side", "organism": "the organism's own side", "vit": _VIT_NOTE},
    datasets={"cityscapes-27": {"kl_threshold": 0.9}},  # the paper's Cityscapes setting (COCO: 1.1)
    papers={("sd14", "coco-stuff-27"): {"miou": 43.6, "acc": 72.5, "source": _DIFFSEG_SRC + ", tau 1.1"},
            ("sd14", "cityscapes-27"): {"miou": 21.2, "acc": 76.0, "source": _DIFFSEG_SRC + ", tau 0.9"}}))

register(Method(
    "diffcut", "DiffCut: recursive NCut on encoder features, concepts, PAMR (Couairon et al., NeurIPS 2024)",
    DiffCutParams,
    {"sd1": {"size": 1024}, "sdxl": {"size": 1024}, "organism": {"size": organism.RESOLUTION},
     "vit": {**_VIT, "noise": "none", "tap": "last", "tau": 0.3, "out_size": None}}, _diffcut,
    family_notes={"organism": "the organism's own side", "vit": _VIT_NOTE},
    papers={("ssd-1b", "coco-stuff-27"): {"miou": 49.1, "source": _DIFFCUT_SRC.format(1)},
            ("ssd-1b", "cityscapes-27"): {"miou": 30.6, "source": _DIFFCUT_SRC.format(1)},
            ("ssd-1b", "voc2012"): {"miou": 65.2, "source": _DIFFCUT_SRC.format(1)},
            ("sd14", "coco-stuff-27"): {"miou": 45.2, "source": _DIFFCUT_SRC.format(7)},
            ("sd14", "cityscapes-27"): {"miou": 24.5, "source": _DIFFCUT_SRC.format(7)},
            ("sd14", "voc2012"): {"miou": 57.5, "source": _DIFFCUT_SRC.format(7)}},
    label_key="out_size", crop_shrink=1))

register(Method(
    "adaptive", "ours: per-pixel adaptive timestep t*, then DiffSeg or NCut grouping (zsnb.hierarchy)",
    AdaptiveParams, _SIZES, _adaptive,
    unsupported={"vit": "a ViT has no timesteps, so there is no t* to choose per pixel."}))

# No official code and no paper defaults could be read (see zsnb.randomwalk): every value here is ours.
register(Method(
    "randomwalk", "random-walk NCut on self-attention, P^k, automatic threshold (after Ivanova et al., WACV 2026)",
    RandomWalkParams, {**_SIZES, "vit": {"size": vit.RESOLUTION, "timesteps": (0,), "layers": _VIT_LAST}}, _randomwalk,
    family_notes={"vit": _VIT_NOTE}))
