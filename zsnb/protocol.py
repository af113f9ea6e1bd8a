"""What every backbone shares: the `Needs` it is asked for, the `Capture` it returns, and the protocol itself.

A backbone is anything with `capture(images, needs) -> Capture` and the few attributes below (`Backbone`):
the diffusers UNets and the organism (`zsnb.backbones`) and the ViT (`zsnb.vit`) implement it, and nothing
above them asks which one it holds. `capture(backbone, image, ...)` is the user-facing call: it fits the
image(s) to the backbone's input (`zsnb.images.load_image`) and hands them over with the `Needs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from zsnb.errors import UnknownNameError, ZsnbError
from zsnb.images import ImageLike, load_batch

NOISE_SEED: int = 42  # DiffCut's noise seed, the default of every method that noises its input
ENCODER_TAP: str = "down_last_attn1"  # the deepest encoder self-attention's output: DiffCut's feature tap


@dataclass(frozen=True)
class Needs:
    """What one capture records; equal Needs on equal images give equal captures (the harness groups by them)."""

    timesteps: tuple[int, ...] = (300,)
    noise: str = "none"  # "none": clean input, timestep embedding only; "seeded": one Gaussian draw per `draws`
    seed: int = NOISE_SEED
    draws: int = 1  # noise draws the maps and features are averaged over
    attention: str | None = "self"  # "self", "cross", "both" or None
    features: tuple[str, ...] = ()  # feature taps (backbone-specific names or aliases)
    stop_after: str | None = None  # "auto": end the forward once everything asked for is captured
    prompt: str = ""
    resolutions: tuple[int, ...] | None = None  # keep attention layers at these map sides only (native input)
    block: int | None = None  # queries per score block (UNet; None: cache-sized)

    def __post_init__(self) -> None:
        if self.noise not in ("none", "seeded"):
            raise ZsnbError(f"noise={self.noise!r}; use 'none' (DiffSeg's clean latent) or 'seeded' (DiffCut's).")
        if not isinstance(self.draws, int) or self.draws < 1 or (self.draws > 1 and self.noise != "seeded"):
            raise ZsnbError(f"draws={self.draws!r} must be a positive integer, and 1 unless noise='seeded' (a clean "
                            "input is the same at every draw).")
        if self.attention not in ("self", "cross", "both", None):
            raise ZsnbError(f"attention={self.attention!r}; use 'self', 'cross', 'both' or None.")
        if self.stop_after not in (None, "auto"):
            raise ZsnbError(f"stop_after={self.stop_after!r}; use None (full forward) or 'auto'.")

    @property
    def kinds(self) -> list[str]:
        """The attention kinds asked for: [], ["self"], ["cross"] or ["self", "cross"]."""
        return {"self": ["self"], "cross": ["cross"], "both": ["self", "cross"], None: []}[self.attention]


@dataclass
class Capture:
    """Maps and features per (timestep, image); rows are timestep-major."""

    timesteps: tuple[int, ...]
    n_images: int
    maps: dict[str, torch.Tensor]  # layer -> (T * n_images, Q, K)
    outputs: dict[str, torch.Tensor]  # layer -> (T * n_images, N, C)
    taps: dict[str, str]  # requested tap -> layer
    self_layers: list[str]
    cross_layers: list[str]
    images: torch.Tensor  # (n_images, 3, H, W) as fed to the backbone

    def _row(self, t: int, index: int) -> int:
        if t not in self.timesteps:
            raise ZsnbError(f"timestep {t} was not captured; captured: {list(self.timesteps)}.")
        if not 0 <= index < self.n_images:
            raise ZsnbError(f"index {index} is out of range; this capture holds {self.n_images} image(s).")
        return self.timesteps.index(t) * self.n_images + index

    def _layers(self, names: list[str], kind: str, t: int, index: int) -> dict[str, torch.Tensor]:
        if not names:
            raise ZsnbError(f"no {kind}-attention was captured; call capture(..., attention='{kind}' or 'both').")
        row = self._row(t, index)
        return {n: self.maps[n][row] for n in names if n in self.maps}

    def self_attention(self, t: int, index: int = 0) -> dict[str, torch.Tensor]:
        """Head-averaged self-attention maps by layer, each (Q, Q); rows sum to 1 over the keys."""
        return self._layers(self.self_layers, "self", t, index)

    def cross_attention(self, t: int, index: int = 0) -> dict[str, torch.Tensor]:
        """Head-averaged cross-attention maps by layer, each (Q, tokens); rows sum to 1 over the tokens."""
        return self._layers(self.cross_layers, "cross", t, index)

    def query_maps(self, t: int, query: tuple[float, float], index: int = 0) -> dict[int, torch.Tensor]:
        """Self-attention of one query pixel, layers of each side averaged: {side: (side, side)}.

        query: (row, col) as fractions of the image side in [0, 1), so one point addresses every resolution.
        """
        if not all(0 <= q < 1 for q in query):
            raise ZsnbError(f"query={query} must be fractions of the image side in [0, 1), e.g. (0.5, 0.5).")
        by_side: dict[int, list[torch.Tensor]] = {}
        for m in self.self_attention(t, index).values():
            side = int(round(m.shape[0] ** 0.5))
            row = int(query[0] * side) * side + int(query[1] * side)
            by_side.setdefault(side, []).append(m[row].reshape(side, side))
        return {side: torch.stack(rows).mean(0) for side, rows in sorted(by_side.items(), reverse=True)}

    def features(self, t: int, tap: str, index: int = 0) -> torch.Tensor:
        """Output of a tapped layer as (h, w, C)."""
        if tap not in self.taps:
            raise UnknownNameError(f"tap {tap!r} was not captured; captured: {sorted(self.taps)}. Pass it in "
                                   "capture(..., features=(...)).")
        out = self.outputs[self.taps[tap]][self._row(t, index)]
        side = int(round(out.shape[0] ** 0.5))
        return out.reshape(side, side, -1)


class Backbone(Protocol):
    """A network whose attention and features zsnb reads: a diffusers UNet, the organism, or the ViT."""

    name: str
    family: str  # picks the methods' defaults in zsnb.registry: "sd1", "sdxl", "organism" or "vit"
    weights: str  # "pretrained", "random" or "trained"
    resolution: int  # native input side in pixels

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def weights_id(self) -> str:
        """Which weights these are (a file hash, a hub id or a folder): records of two models must not mix."""
        ...

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights held on the device (the memory budget sets them aside)."""
        ...

    def attention_layers(self, kind: str = "self", resolution: int | None = None) -> dict[int, list[str]]:
        """Attention layer names grouped by map side at the native input, largest first."""
        ...

    def tap_shape(self, tap: str) -> tuple[int, int]:
        """(token-grid side at the native input, channels) of a feature tap."""
        ...

    def capture(self, images: torch.Tensor, needs: Needs) -> Capture:
        """(N, 3, S, S) images in [0, 1] -> what `needs` asks for, at input side S."""
        ...


def capture(backbone: Backbone, image: ImageLike | Sequence[ImageLike], timesteps: int | Sequence[int] = (300,), *,
            noise: str = "none", seed: int = NOISE_SEED, draws: int = 1, prompt: str = "",
            attention: str | None = "self", features: str | Sequence[str] = (), stop_after: str | None = None,
            resolutions: Sequence[int] | None = None, block: int | None = None, size: int | None = None) -> Capture:
    """Fit image(s) to a square of `size` (default the backbone's) and capture them in one batch.

    noise: "none" (clean latent, timestep embedding only) or "seeded" (one Gaussian noise tensor from `seed`
    added with the scheduler at each t). draws: with "seeded", the network runs once per noise tensor from seeds
    seed, seed + 1, ... and maps and features are their means: the attention at t in expectation over the noise
    rather than under one draw of it (DIFT averages its features over noise draws the same way).
    attention: "self", "cross", "both" or None. features: taps (ENCODER_TAP, a layer name, or the ViT's).
    stop_after: None runs the whole network; "auto" ends the forward once everything asked for is captured.
    resolutions: keep only attention layers at these map sides (native input). block: queries per score block.
    """
    timesteps = (timesteps,) if isinstance(timesteps, int) else tuple(timesteps)
    features = (features,) if isinstance(features, str) else tuple(features)
    needs = Needs(timesteps, noise, seed, draws, attention, features, stop_after, prompt,
                  None if resolutions is None else tuple(resolutions), block)
    return backbone.capture(load_batch(image, size or backbone.resolution), needs)
