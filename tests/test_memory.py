"""Batches from a memory budget: the estimate counts what a capture keeps, and the batch fits the budget."""

from __future__ import annotations

import pytest
import torch

import zsnb
from zsnb import memory, world, worldeval
from zsnb.protocol import Needs


def test_capture_bytes_equal_what_a_capture_holds(organism, scene_image):
    cap = zsnb.capture(organism, scene_image, timesteps=(50, 300), attention="self", features=("down_last_attn1",))
    held = sum(v.numel() * v.element_size() for v in (*cap.maps.values(), *cap.outputs.values()))
    assert memory.capture_bytes(organism, 32, 2, "self", ("down_last_attn1",)) == held


def test_capture_bytes_scale_with_input_side(organism):
    # self-attention maps are (Q, Q) with Q = side**2: doubling the input side multiplies them by 16
    assert memory.capture_bytes(organism, 64) == 16 * memory.capture_bytes(organism, 32)


def test_batch_fits_budget_and_grows_with_it(organism):
    small, large = memory.batch_size(organism, 32, 8, budget_gb=0.1), memory.batch_size(organism, 32, 8, budget_gb=1)
    assert 1 <= small < large
    per_image = memory.capture_bytes(organism, 32, 8) + memory.working_bytes(organism, 32, 8)
    assert small * per_image <= 0.1 * 2**30


def test_budget_too_small_or_invalid_says_what_to_do(organism):
    with pytest.raises(zsnb.ZsnbError, match="raise the budget"):
        memory.batch_size(organism, 32, 8, budget_gb=1e-4)
    with pytest.raises(zsnb.ZsnbError, match="positive"):
        memory.batch_size(organism, 32, budget_gb=0)


def test_world_scenes_are_drawn_at_the_capture_size(organism):
    (scenes, cap), = worldeval.captures(organism, world.EVAL_SEEDS[:2], Needs((300,)), size=64, progress=False)
    assert scenes[0].image.shape == (64, 64, 3) and cap.images.shape == (2, 3, 64, 64)
    drawn = torch.from_numpy(world.scene(world.EVAL_SEEDS[0], 64).image).permute(2, 0, 1)
    torch.testing.assert_close(cap.images[0], drawn)
