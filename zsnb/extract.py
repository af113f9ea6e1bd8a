"""Capture attention probabilities and features from a diffusers UNet, through attention processors.

`capture(backbone, image, timesteps)` encodes the image, optionally noises it, runs the UNet once with all
timesteps in one batch, and returns a `Capture` with the head-averaged probability maps of every requested
self- and cross-attention layer and the outputs of requested feature taps. The capture processor is
installed only on the layers asked for, by a context manager that restores the original processors in a
`finally`, so the rest of the UNet keeps diffusers' fused attention. Maps are averaged over heads inside the
processor, a few heads at a time, so per-head maps at 64x64 latent resolution are never stored.

Conventions: DiffSeg feeds the clean latent with the timestep embedding of t=300 (`noise="none"`); DiffCut adds
one seeded Gaussian noise tensor (seed 42) at t=50 (`noise="seeded"`). Sources:
docs/reference.md#diffseg-official-defaults and docs/reference.md#diffcut-official-defaults.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention

from zsnb import vit
from zsnb.backbones import Backbone
from zsnb.diffcut import FEATURE_TAP
from zsnb.errors import UnknownNameError, ZsnbError
from zsnb.images import ImageLike, load_image

BLOCK_BYTES = 8 << 20  # fp32 scores of one query block (batch x heads x block x keys): cache-sized
NOISE_SEED: int = 42  # DiffCut's noise seed, the default of every method that noises its input


def tap_aliases(unet: UNet2DConditionModel) -> dict[str, str]:
    """Named feature taps -> attention layer names; FEATURE_TAP ("down_last_attn1") is DiffCut's encoder feature."""
    down = [n.removesuffix(".processor") for n in unet.attn_processors if n.startswith("down_blocks.")]
    self_down = [n for n in down if n.endswith("attn1")]
    aliases = {}
    if self_down:
        # deepest down block with attentions -> its last transformer -> its last block's self-attention
        aliases[FEATURE_TAP] = max(self_down, key=lambda n: [int(p) for p in n.split(".") if p.isdigit()])
    return aliases


def resolve_tap(unet: UNet2DConditionModel, tap: str) -> str:
    """An alias or attention layer name -> the attention layer whose output (before the residual) is tapped."""
    aliases = tap_aliases(unet)
    names = [n.removesuffix(".processor") for n in unet.attn_processors]
    if tap in aliases:
        return aliases[tap]
    if tap in names:
        return tap
    raise UnknownNameError(f"unknown feature tap {tap!r}; aliases: {sorted(aliases)}; or any attention layer: "
                           f"{', '.join(names)}.")


class _StopForward(Exception):
    """Raised inside the UNet once everything requested is captured (stop_after)."""


@dataclass
class AttentionStore:
    """What one forward leaves behind: head-averaged maps (B, Q, K) and tap outputs (B, N, C), by layer."""

    map_layers: set[str]
    tap_layers: set[str]
    stop_when_done: bool
    maps: dict[str, torch.Tensor] = field(default_factory=dict)
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.pending = self.map_layers | self.tap_layers

    def done(self, layer: str) -> None:
        """Mark a layer captured; end the forward early when nothing is pending and that was asked for."""
        self.pending.discard(layer)
        if self.stop_when_done and not self.pending:
            raise _StopForward


class CaptureProcessor:
    """Attention like diffusers' classic `AttnProcessor`, recording head-averaged probabilities and/or output.

    Queries go in blocks whose (batch, heads, block, keys) scores stay under BLOCK_BYTES, so softmax, the product
    with the values and the head average work on cache-sized pieces instead of streaming a (heads, Q, K) tensor
    through memory three times (measured on one 64x64 SD layer: 0.8 s -> 0.2-0.4 s; fused SDPA 0.13 s).
    """

    def __init__(self, store: AttentionStore, layer: str, block: int | None = None) -> None:
        self.store, self.layer, self.block = store, layer, block

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, *args, **kwargs
                 ) -> torch.Tensor:
        if attn.spatial_norm is not None or attn.group_norm is not None or hidden_states.ndim != 3:
            raise ZsnbError(f"layer {self.layer} is not a transformer attention; capture only those of a UNet.")
        residual = hidden_states
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        b, q_len, _ = hidden_states.shape
        k_len, heads = context.shape[1], attn.heads
        q = attn.to_q(hidden_states).unflatten(-1, (heads, -1)).transpose(1, 2)  # (B, heads, Q, d)
        k = attn.to_k(context).unflatten(-1, (heads, -1)).transpose(1, 2)  # (B, heads, K, d)
        v = attn.to_v(context).unflatten(-1, (heads, -1)).transpose(1, 2)  # (B, heads, K, d)
        upcast = attn.upcast_attention or attn.upcast_softmax  # what get_attention_scores would do in fp32
        kt = (k.float() if upcast else k).transpose(-1, -2) * attn.scale  # (B, heads, d, K)
        mask = attn.prepare_attention_mask(attention_mask, k_len, b)
        if mask is not None:
            mask = mask.view(b, heads, -1, k_len)  # (B, heads, 1 or Q, K)
        record = self.layer in self.store.map_layers
        acc = torch.promote_types(q.dtype, torch.float32)  # sums in float32, or float64 for a float64 UNet
        prob_sum = torch.empty(b, q_len, k_len, dtype=acc, device=q.device) if record else None
        out = torch.empty_like(q)
        block = self.block or max(1, BLOCK_BYTES // (b * heads * k_len * 4))
        for i in range(0, q_len, block):
            rows = slice(i, i + block)
            scores = (q[:, :, rows].float() if upcast else q[:, :, rows]) @ kt  # (B, heads, block, K)
            if mask is not None:
                scores = scores + (mask if mask.shape[2] == 1 else mask[:, :, rows])
            probs = scores.softmax(-1).to(v.dtype)
            out[:, :, rows] = probs @ v
            if record:
                torch.sum(probs, 1, dtype=acc, out=prob_sum[:, rows])
        out = out.transpose(1, 2).flatten(2)  # (B, Q, heads * d)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        out = out / attn.rescale_output_factor
        if record:
            self.store.maps[self.layer] = prob_sum.div_(heads)
        if self.layer in self.store.tap_layers:
            self.store.outputs[self.layer] = out.to(acc)
        self.store.done(self.layer)
        return out


@contextmanager
def attention_processors(unet: UNet2DConditionModel, processors: dict[str, object]) -> Iterator[None]:
    """Install `processors` (keyed by layer name) on `unet`; the originals come back even after an error."""
    original = dict(unet.attn_processors)
    try:
        # set_attn_processor empties the dict it is given, so pass a fresh one
        unet.set_attn_processor({k: processors.get(k.removesuffix(".processor"), p) for k, p in original.items()})
        yield
    finally:
        unet.set_attn_processor(dict(original))


@dataclass
class Capture:
    """Result of `capture`: maps and features per (timestep, image); rows are timestep-major."""

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
        """Output of a tapped attention layer (before its residual) as (h, w, C) float32."""
        if tap not in self.taps:
            raise UnknownNameError(f"tap {tap!r} was not captured; captured: {sorted(self.taps)}. Pass it in "
                                   "capture(..., features=(...)).")
        out = self.outputs[self.taps[tap]][self._row(t, index)]
        side = int(round(out.shape[0] ** 0.5))
        return out.reshape(side, side, -1)


def _as_batch(image: ImageLike | Sequence[ImageLike], size: int) -> torch.Tensor:
    """One image or a list of images as a (N, 3, size, size) batch in [0, 1]."""
    if isinstance(image, list | tuple):
        if not image:
            raise ZsnbError("image is an empty list; pass at least one image.")
        return torch.stack([load_image(im, size) for im in image])
    if isinstance(image, torch.Tensor) and image.ndim == 4:
        return torch.stack([load_image(im, size) for im in image])
    return load_image(image, size)[None]


def _check_timesteps(backbone: Backbone, timesteps: Sequence[int]) -> tuple[int, ...]:
    """Timesteps as a tuple of distinct ints inside the scheduler's range."""
    if isinstance(timesteps, int):
        timesteps = (timesteps,)
    n_train = backbone.scheduler.config.num_train_timesteps
    ts = tuple(int(t) for t in timesteps)
    if not ts or any(not 0 <= t < n_train for t in ts) or any(t != t0 for t, t0 in zip(ts, timesteps, strict=True)):
        raise ZsnbError(f"timesteps={tuple(timesteps)} must be integers in [0, {n_train - 1}] for this "
                        "scheduler (DiffSeg uses 300, DiffCut 50).")
    if len(set(ts)) != len(ts):
        raise ZsnbError(f"timesteps={ts} repeats a timestep; pass each once.")
    return ts


def seeded_noise(shape: Sequence[int], seed: int = NOISE_SEED) -> torch.Tensor:
    """The Gaussian noise "seeded" captures add: one (C, h, w) float64 tensor from `seed`, the same at every t."""
    gen = torch.Generator("cpu").manual_seed(seed)
    # float64: float32 randn takes a vectorised path whose values differ between CPUs
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float64)


@torch.no_grad()
def capture(backbone: Backbone | vit.VitBackbone, image: ImageLike | Sequence[ImageLike],
            timesteps: Sequence[int] = (300,), *,
            noise: str = "none", seed: int = NOISE_SEED, draws: int = 1, prompt: str = "",
            attention: str | None = "self", features: Sequence[str] = (), stop_after: str | None = None,
            resolutions: Sequence[int] | None = None, block: int | None = None, size: int | None = None) -> Capture:
    """Run the UNet once on image(s) at all `timesteps` (one batch) and return the captured maps and features.

    noise: "none" (clean latent, timestep embedding only) or "seeded" (one Gaussian noise tensor from `seed`
    added with the scheduler at each t). draws: with "seeded", the UNet runs once per noise tensor from seeds
    seed, seed + 1, ... and maps and features are their means: the attention the model has at t in expectation
    over the noise rather than under one draw of it (DIFT averages its features over noise draws the same way).
    attention: "self", "cross", "both" or None. features: taps (see
    `tap_aliases`) or attention layer names. stop_after: None runs the whole UNet; "auto" ends the forward
    as soon as everything requested is captured (encoder-only taps then cost only the encoder).
    resolutions: keep only attention layers at these map sides (at the native size). block: queries per score
    block (default: BLOCK_BYTES of scores). size: input side in pixels (default: the backbone's native
    resolution; DiffCut runs SD1.4 at 1024); map sides scale with it.
    """
    if not isinstance(draws, int) or draws < 1 or (draws > 1 and noise != "seeded"):
        raise ZsnbError(f"draws={draws!r} must be a positive integer, and 1 unless noise='seeded' (a clean input "
                        "is the same at every draw).")
    if isinstance(backbone, vit.VitBackbone):  # no UNet: the ViT's own capture, same arguments and result
        return vit.capture(backbone, image, timesteps, noise=noise, seed=seed, prompt=prompt, attention=attention,
                           features=features, stop_after=stop_after, resolutions=resolutions, block=block, size=size)
    if noise not in ("none", "seeded"):
        raise ZsnbError(f"noise={noise!r}; use 'none' (DiffSeg's clean latent) or 'seeded' (DiffCut's).")
    if attention not in ("self", "cross", "both", None):
        raise ZsnbError(f"attention={attention!r}; use 'self', 'cross', 'both' or None.")
    if stop_after not in (None, "auto"):
        raise ZsnbError(f"stop_after={stop_after!r}; use None (full forward) or 'auto'.")
    if isinstance(features, str):
        features = (features,)
    ts = _check_timesteps(backbone, timesteps)
    unet = backbone.unet
    taps = {tap: resolve_tap(unet, tap) for tap in features}
    kinds = {"self": ["self"], "cross": ["cross"], "both": ["self", "cross"], None: []}[attention]
    chosen = {kind: [n for res, names in backbone.attention_layers(kind).items()
                     if resolutions is None or res in resolutions for n in names] for kind in ("self", "cross")}
    if resolutions is not None and attention is not None and not any(chosen[k] for k in kinds):
        raise ZsnbError(f"resolutions={tuple(resolutions)} matches no attention layer; available: "
                        f"{sorted(backbone.attention_layers('self'))}.")
    map_layers = {n for kind in kinds for n in chosen[kind]}

    side = backbone.resolution if size is None else size
    multiple = backbone.vae_factor * 2 ** (len(unet.config.block_out_channels) - 1)  # every downsample must divide
    if side <= 0 or side % multiple:
        raise ZsnbError(f"size={size} must be a positive multiple of {multiple} for this UNet; "
                        f"its native size is {backbone.resolution}.")
    images = _as_batch(image, side)
    latents = backbone.encode_image(images)  # (N, C, h, w)
    n = latents.shape[0]
    x = latents.repeat(len(ts), 1, 1, 1)
    t = torch.tensor(ts, device=backbone.device).repeat_interleave(n)
    cond = backbone.encode_prompt(prompt).expand(x.shape[0])
    maps: dict[str, torch.Tensor] = {}
    outputs: dict[str, torch.Tensor] = {}
    for draw in range(draws):
        store = AttentionStore(map_layers, set(taps.values()), stop_when_done=stop_after == "auto")
        procs = {name: CaptureProcessor(store, name, block) for name in map_layers | set(taps.values())}
        x_t = x
        if noise == "seeded":
            eps = seeded_noise(latents.shape[1:], seed + draw).to(backbone.device, backbone.dtype)
            x_t = backbone.scheduler.add_noise(x, eps.expand_as(x), t).to(backbone.dtype)
        with attention_processors(unet, procs):
            try:
                unet(x_t, t, encoder_hidden_states=cond.encoder_hidden_states,
                     added_cond_kwargs=cond.added_cond_kwargs)
            except _StopForward:
                pass
        for got, total in ((store.maps, maps), (store.outputs, outputs)):
            for name, value in got.items():
                total[name] = value if draw == 0 else total[name].add_(value)
    if draws > 1:
        for total in (maps, outputs):
            for value in total.values():
                value.div_(draws)
    return Capture(ts, n, maps, outputs, taps,
                   [n for n in chosen["self"] if n in map_layers], [n for n in chosen["cross"] if n in map_layers],
                   images)
