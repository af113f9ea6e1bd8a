"""Each method's parameters as one frozen, typed record, and where every value of a resolved record came from.

A record's defaults are the official values (or, for our own methods, ours), each field carrying its source
in `field(metadata={"source": ...})` so `--show-params` can print it. `resolve` layers the values a run uses,
later layers winning, and remembers the layer of every field:

    official (the record's default) < backbone family < dataset < organism tuning < caller

Values from JSON, Python or the command line go through `convert` / `parse`, which coerce by the field's
type and refuse an unknown key or a value of the wrong type with the valid keys and types.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from zsnb import hierarchy
from zsnb.errors import ZsnbError
from zsnb.protocol import ENCODER_TAP, NOISE_SEED, Needs

Noise = Literal["none", "seeded"]
Grouping = Literal["diffseg", "ncut"]
Fusion = Literal["reweight", "random_walk", "attention", "features"]
Criterion = Literal["entropy", "agreement", "stability", "growth"]
Pipeline = Literal["mix", "smooth", "pairwise", "region"]
Graph = Literal["transition", "adjacency"]


def src(default: Any, source: str) -> Any:
    """A dataclass field with `default` and the one line that says where it comes from."""
    return field(default=default, metadata={"source": source})


@dataclass(frozen=True)
class Params:
    """Base of the parameter records: a method's values, typed and frozen."""

    size: int  # input side in pixels; every record sets its own default

    def needs(self) -> Needs:
        """What a capture must record for this method with these values."""
        raise NotImplementedError

    def replace(self, **changes: Any) -> Params:
        """A copy with `changes` (keys and types checked)."""
        return dataclasses.replace(self, **{k: convert(type(self), k, v) for k, v in changes.items()})

    def as_dict(self) -> dict[str, Any]:
        """{field: value}, tuples kept (JSON turns them into lists)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class DiffSegParams(Params):
    """DiffSeg (Tian et al., CVPR 2024): KL merging of aggregated self-attention."""

    size: int = src(512, "DiffSeg code: KerasCV StableDiffusion(512, 512)")
    timestep: int = src(300, "DiffSeg code, benchmarks.ipynb: timestep=300")
    noise: Noise = src("none", "DiffSeg code: the clean latent with the timestep's embedding")
    seed: int = src(NOISE_SEED, "unused without noise (DiffCut's seed)")
    draws: int = src(1, "DiffSeg code: one UNet pass")
    kl_threshold: float = src(1.1, "DiffSeg code, benchmarks.ipynb: KL_THRESHOLD = [1.1] * 3 (COCO-Stuff-27)")
    num_points: int = src(16, "DiffSeg code, segmentor.py: NUM_POINTS = 16 (16 x 16 anchors)")
    iterations: int = src(3, "DiffSeg code: one threshold per merging iteration, three")
    refine: bool = src(False, "DiffSeg code: K-means refinement off in benchmarks.ipynb")
    layers: tuple[str, ...] | None = src(None, "DiffSeg code: every self-attention layer (None: all)")

    def needs(self) -> Needs:
        return Needs((self.timestep,), self.noise, self.seed, self.draws, attention="self")


@dataclass(frozen=True)
class DiffCutParams(Params):
    """DiffCut (Couairon et al., NeurIPS 2024): recursive NCut on encoder features, concepts, PAMR."""

    size: int = src(1024, "DiffCut code, eval_diffcut.py: images resized to 1024 (SSD-1B and SD1.4)")
    timestep: int = src(50, "DiffCut paper and code, tools/ldm.py: t = 50")
    noise: Noise = src("seeded", "DiffCut code: one fixed Gaussian tensor added with scheduler.add_noise")
    seed: int = src(NOISE_SEED, "DiffCut code: torch generator seed 42")
    draws: int = src(1, "DiffCut code: one noise tensor")
    tap: str = src(ENCODER_TAP, "DiffCut code: the last encoder self-attention's output, before the residual")
    tau: float = src(0.5, "DiffCut paper and code: tau = 0.5 on every dataset")
    alpha: float = src(10.0, "DiffCut paper Eq. 3 and code: affinity exponent 10")
    refine: bool = src(True, "DiffCut code, eval_diffcut.py --refinement: PAMR, then a 3 x 3 median")
    out_size: int | None = src(128, "DiffCut code, eval_diffcut.py: labels at 128 x 128 (None: image size)")
    pamr_iterations: int = src(10, "DiffCut code, tools/pamr.py: 10 iterations")
    pamr_dilations: tuple[int, ...] = src((1, 2, 4, 8), "DiffCut code, tools/pamr.py: dilations 1, 2, 4, 8")

    def needs(self) -> Needs:
        return Needs((self.timestep,), self.noise, self.seed, self.draws, attention=None, features=(self.tap,),
                     stop_after="auto")


@dataclass(frozen=True)
class AdaptiveParams(Params):
    """Ours: a per-token timestep map from a label-free criterion, then a pipeline that segments with it."""

    size: int = src(512, "ours: DiffSeg's input size")
    timesteps: tuple[int, ...] = src((0, 100, 200, 300, 400, 500, 600, 700), "ours: the candidates for t*")
    noise: Noise = src("seeded", "ours: noised at each t, so t picks the level")
    seed: int = src(NOISE_SEED, "DiffCut's seed")
    draws: int = src(1, "ours: one forward per t")
    grouping: Grouping = src("ncut", "ours: the best label-free design of benchmarks/adaptive.py (organism)")
    pipeline: Pipeline = src("pairwise", "ours: tokens compared at the coarser of their two timesteps")
    criterion: Criterion = src("stability", "ours: the first t at which a token's attention row stops changing")
    knob: float = src(0.03, "ours: stability's symmetric-KL threshold, chosen on the organism's training scenes")
    fusion: Fusion = src("attention", "ours: plain attention (fusion hurt NCut at the organism's static t)")
    temperature: float = src(hierarchy.DEFAULT_TEMPERATURE, "ours: cosine temperature of the feature kernel")
    tap: str = src(ENCODER_TAP, "DiffCut's feature tap")
    kl_threshold: float = src(1.1, "DiffSeg's (COCO-Stuff-27)")
    num_points: int = src(16, "DiffSeg's")
    iterations: int = src(3, "DiffSeg's")
    tau: float = src(0.5, "DiffCut's")
    alpha: float = src(10.0, "DiffCut's")

    def needs(self) -> Needs:
        return Needs(tuple(sorted(self.timesteps)), self.noise, self.seed, self.draws, attention="self",
                     features=(self.tap,))


@dataclass(frozen=True)
class RandomWalkParams(Params):
    """Ours, after Ivanova et al. (WACV 2026): NCut of the attention random walk P^k."""

    size: int = src(512, "ours: DiffSeg's input size")
    timesteps: tuple[int, ...] = src((300,), "ours: DiffSeg's timestep (the paper's schedule was not retrieved)")
    noise: Noise = src("none", "ours: DiffSeg's clean input")
    seed: int = src(NOISE_SEED, "DiffCut's seed")
    draws: int = src(1, "ours: one forward per t")
    k: int = src(1, "ours: chosen on the organism's training scenes")
    graph: Graph = src("transition", "ours: NCut of the walk itself")
    threshold: float | None = src(None, "ours: None picks each cut's threshold automatically")
    layers: tuple[str, ...] | None = src(None, "ours: every self-attention layer (None: all)")

    def needs(self) -> Needs:
        return Needs(tuple(sorted(self.timesteps)), self.noise, self.seed, self.draws, attention="self")


class Resolved(NamedTuple):
    """A method's resolved record and, per field, the layer its value came from."""

    record: Params
    sources: dict[str, str]

    def table(self) -> str:
        """One line per field: name, value, where it came from (and the official source when official)."""
        meta = {f.name: f.metadata.get("source", "") for f in dataclasses.fields(self.record)}
        hints = _hints(type(self.record))
        rows = [(name, repr(value), _type_name(hints[name]), self.sources[name]
                 + (f" ({meta[name]})" if self.sources[name] == "official" else ""))
                for name, value in self.record.as_dict().items()]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3] for r in rows)


def resolve(cls: type[Params], layers: Mapping[str, Mapping[str, Any]]) -> Resolved:
    """The record `cls` built from its defaults and `layers` ({layer name: {field: value}}, later wins)."""
    values: dict[str, Any] = {}
    sources = {f.name: "official" for f in dataclasses.fields(cls)}
    for origin, given in layers.items():
        for key, value in given.items():
            values[key] = convert(cls, key, value, origin)
            sources[key] = origin
    return Resolved(cls(**values), sources)


def _hints(cls: type[Params]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(hint: Any) -> str:
    """A type hint as a user reads it: "float", "int | None", "tuple[int, ...]", "'none' | 'seeded'"."""
    if typing.get_origin(hint) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return f"tuple[{_type_name(typing.get_args(hint)[0])}, ...]"
    return "None" if hint is type(None) else hint.__name__


def _check_key(cls: type[Params], key: str, origin: str) -> Any:
    hints = _hints(cls)
    if key not in hints:
        valid = ", ".join(f"{k}: {_type_name(h)}" for k, h in hints.items())
        raise ZsnbError(f"unknown parameter {key!r} ({origin}) for {cls.__name__}; valid keys: {valid}.")
    return hints[key]


def convert(cls: type[Params], key: str, value: Any, origin: str = "caller") -> Any:
    """A Python or JSON value for field `key` of `cls`, checked against its type (lists become tuples)."""
    hint = _check_key(cls, key, origin)
    out = _coerce(hint, value)
    if out is _BAD:
        raise ZsnbError(f"parameter {key}={value!r} ({origin}) is not of type {_type_name(hint)} for {cls.__name__}.")
    return out


def parse(cls: type[Params], key: str, text: str) -> Any:
    """A command-line string for field `key` of `cls` ("0.6", "none", "true", "1,2,4,8") -> its typed value."""
    hint = _check_key(cls, key, "--set")
    out = _parse(hint, text.strip())
    if out is _BAD:
        raise ZsnbError(f"--set {key}={text}: not a {_type_name(hint)}; for example --set {key}="
                        f"{_example(hint)}.")
    return out


_BAD = object()


def _coerce(hint: Any, value: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            out = _coerce(arg, value)
            if out is not _BAD:
                return out
        return _BAD
    if hint is type(None):
        return None if value is None else _BAD
    if origin is Literal:
        return value if value in args else _BAD
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return _BAD
        items = [_coerce(args[0], v) for v in value]
        return _BAD if any(i is _BAD for i in items) else tuple(items)
    if hint is bool:
        return value if isinstance(value, bool) else _BAD
    if hint is int:
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else _BAD
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok else _BAD
    if hint is str:
        return value if isinstance(value, str) else _BAD
    raise TypeError(f"no coercion for {hint}")


def _parse(hint: Any, text: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            out = _parse(arg, text)
            if out is not _BAD:
                return out
        return _BAD
    if hint is type(None):
        return None if text.lower() in ("none", "null") else _BAD
    if origin is Literal:
        return text if text in args else _BAD
    if origin is tuple:
        items = [_parse(args[0], part) for part in text.split(",") if part.strip()]
        return _BAD if not items or any(i is _BAD for i in items) else tuple(items)
    if hint is bool:
        return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(text.lower(), _BAD)
    for kind in (int, float):
        if hint is kind:
            try:
                return kind(text)
            except ValueError:
                return _BAD
    return text if hint is str else _BAD


def _example(hint: Any) -> str:
    """A valid command-line value of `hint`, for the error message."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _example(args[0])
    if origin is Literal:
        return str(args[0])
    if origin is tuple:
        return ",".join([_example(args[0])] * 2)
    return {bool: "true", int: "3", float: "0.5", str: "name"}.get(hint, "none")
