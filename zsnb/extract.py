"""Recording attention probabilities and features inside a diffusers UNet, through attention processors.

`record` runs one forward with `CaptureProcessor` installed on the layers asked for (a context manager puts
the original processors back in a `finally`, so the rest of the UNet keeps diffusers' fused attention) and
returns the head-averaged probability maps and tapped outputs. Maps are averaged over heads inside the
processor, a few query rows at a time, so per-head maps at 64x64 latent resolution are never stored.
`zsnb.backbones.Backbone.capture` builds on it (encoding, noise, timesteps, draws); `add_seeded_noise` is the
one place the "seeded" input is made.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention

from zsnb.errors import UnknownNameError, ZsnbError
from zsnb.protocol import ENCODER_TAP, NOISE_SEED

BLOCK_BYTES = 8 << 20  # fp32 scores of one query block (batch x heads x block x keys): cache-sized


def tap_aliases(unet: UNet2DConditionModel) -> dict[str, str]:
    """Named feature taps -> attention layer names; ENCODER_TAP is DiffCut's encoder feature."""
    down = [n.removesuffix(".processor") for n in unet.attn_processors if n.startswith("down_blocks.")]
    self_down = [n for n in down if n.endswith("attn1")]
    aliases = {}
    if self_down:
        # deepest down block with attentions -> its last transformer -> its last block's self-attention
        aliases[ENCODER_TAP] = max(self_down, key=lambda n: [int(p) for p in n.split(".") if p.isdigit()])
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
    through memory three times (benchmarks/results/capture.md: all maps against the plain forward).
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


def record(unet: UNet2DConditionModel, x: torch.Tensor, t: torch.Tensor, cond: Any, map_layers: set[str],
           tap_layers: set[str], stop_after: str | None = None, block: int | None = None
           ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One UNet forward on (B, C, h, w) inputs at (B,) timesteps -> ({layer: (B, Q, K) maps}, {layer: (B, N, C)})."""
    store = AttentionStore(map_layers, tap_layers, stop_when_done=stop_after == "auto")
    procs = {name: CaptureProcessor(store, name, block) for name in map_layers | tap_layers}
    with attention_processors(unet, procs):
        try:
            unet(x, t, encoder_hidden_states=cond.encoder_hidden_states, added_cond_kwargs=cond.added_cond_kwargs)
        except _StopForward:
            pass
    return store.maps, store.outputs


def seeded_noise(shape: Sequence[int], seed: int = NOISE_SEED) -> torch.Tensor:
    """The Gaussian noise "seeded" captures add: one (C, h, w) float64 tensor from `seed`, the same at every t."""
    gen = torch.Generator("cpu").manual_seed(seed)
    # float64: float32 randn takes a vectorised path whose values differ between CPUs
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float64)


def add_seeded_noise(scheduler: Any, x: torch.Tensor, t: torch.Tensor, seed: int = NOISE_SEED) -> torch.Tensor:
    """(B, C, h, w) clean inputs at (B,) timesteps -> the scheduler's x_t with `seeded_noise(seed)` in every row."""
    eps = seeded_noise(x.shape[1:], seed).to(x.device, x.dtype)
    return scheduler.add_noise(x, eps.expand_as(x), t).to(x.dtype)
