"""Capture once, segment many: a grid of (method, record) settings over a batch of images.

Settings whose captures differ only in timesteps, attention kind or feature taps share one capture that holds
the union of them (`merge`); each setting then reads its part. Batches follow the memory budget
(`zsnb.memory.batch_size`), so a sweep over timesteps costs one forward per batch, not one per setting.

    labels = segment_grid(backbone, images, [("diffseg", r.replace(timestep=t)) for t in (100, 300, 500)])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import torch

from zsnb import registry
from zsnb.errors import ZsnbError
from zsnb.memory import DEFAULT_BUDGET_GB, batch_size
from zsnb.parameters import Params
from zsnb.protocol import Backbone, Capture, Needs

Setting = tuple[str, Params]  # (registered method name, its record)


def _key(needs: Needs) -> Needs:
    """What two captures must share to be merged: everything but timesteps, attention, taps and stopping."""
    return dataclasses.replace(needs, timesteps=(0,), attention=None, features=(), stop_after=None)


def merge(needs: Sequence[Needs]) -> Needs:
    """One Needs recording everything each of `needs` asks for (they must share `_key`)."""
    if len({_key(n) for n in needs}) != 1:
        raise ZsnbError("these captures differ in noise, seed, draws, prompt, resolutions or block; capture them "
                        "separately.")
    kinds = {k for n in needs for k in n.kinds}
    attention = {frozenset(): None, frozenset({"self"}): "self", frozenset({"cross"}): "cross"}.get(
        frozenset(kinds), "both")
    stop = "auto" if all(n.stop_after == "auto" for n in needs) else None
    return dataclasses.replace(needs[0], timesteps=tuple(sorted({t for n in needs for t in n.timesteps})),
                               attention=attention, features=tuple(dict.fromkeys(f for n in needs for f in n.features)),
                               stop_after=stop)


def captures(backbone: Backbone, images: torch.Tensor, needs: Needs, batch: int | None = None,
             memory_gb: float = DEFAULT_BUDGET_GB) -> Iterator[tuple[range, Capture]]:
    """(indices, capture) for batches of (N, 3, S, S) `images`; batch None: as many as `memory_gb` holds."""
    batch = batch or batch_size(backbone, images.shape[-1], len(needs.timesteps), needs.attention, needs.features,
                                memory_gb)
    for start in range(0, len(images), batch):
        rows = range(start, min(start + batch, len(images)))
        yield rows, backbone.capture(images[rows.start : rows.stop], needs)


def segment_grid(backbone: Backbone, images: torch.Tensor, settings: Sequence[Setting],
                 out_hw: tuple[int, int] | None = None, batch: int | None = None,
                 memory_gb: float = DEFAULT_BUDGET_GB) -> list[list[torch.Tensor]]:
    """(N, 3, S, S) images and settings whose records all have size S -> labels[setting][image], (H, W) each.

    out_hw: the label side (default (S, S)). One capture per group of mergeable settings and batch.
    """
    side = images.shape[-1]
    wrong = [f"{m} (size {r.size})" for m, r in settings if r.size != side]
    if wrong:
        raise ZsnbError(f"images are {side} px but these settings feed another size: {', '.join(wrong)}; "
                        "load the images at each setting's size and call once per size.")
    out_hw = out_hw or (side, side)
    groups: dict[Needs, list[int]] = {}
    for i, (_, record) in enumerate(settings):
        groups.setdefault(_key(record.needs()), []).append(i)
    labels: list[list[torch.Tensor]] = [[] for _ in settings]
    for members in groups.values():
        needs = merge([settings[i][1].needs() for i in members])
        for rows, cap in captures(backbone, images, needs, batch, memory_gb):
            for i in members:
                method, record = settings[i]
                labels[i] += [registry.segment_capture(method, cap, j, record, out_hw) for j in range(len(rows))]
    return labels
