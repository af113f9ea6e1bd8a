"""The backbone protocol and the harness: one capture per capture setting, the same labels as one call each."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import zsnb
from zsnb import harness, registry, world, worldeval
from zsnb.protocol import Backbone, Needs

pytestmark = pytest.mark.usefixtures("one_thread")
MEMBERS = [name for name in dir(Backbone) if not name.startswith("_")] + list(Backbone.__annotations__)


@pytest.mark.parametrize("name", ["organism", "vit-s"])
def test_backbones_implement_the_protocol(name):
    bb = zsnb.load_backbone(name)
    missing = [m for m in MEMBERS if not hasattr(bb, m)]
    assert not missing and not hasattr(bb, "defaults")  # backbones know nothing of methods
    side, channels = bb.tap_shape("last" if name == "vit-s" else "down_last_attn1")
    assert side >= 1 and channels >= 1 and bb.weight_bytes >= 0 and bb.weights_id


class Counting:
    """A backbone that counts its captures and the timesteps each one holds."""

    def __init__(self, backbone) -> None:
        self.backbone, self.calls = backbone, []

    def __getattr__(self, name):
        return getattr(self.backbone, name)

    def capture(self, images: torch.Tensor, needs: Needs):
        self.calls.append(needs)
        return self.backbone.capture(images, needs)


def test_a_grid_is_one_capture_per_setting_group_and_matches_one_call_each(organism):
    seeds = world.EVAL_SEEDS[:3]
    ds = registry.params("diffseg", organism, noise="none").record
    dc = registry.params("diffcut", organism).record
    settings = [("diffseg", ds.replace(timestep=t)) for t in (100, 300, 600)] + [
        ("diffseg", ds.replace(timestep=300, kl_threshold=0.5)), ("diffcut", dc)]
    counting = Counting(organism)
    grid, scenes = worldeval.predict_grid(counting, seeds, settings, batch=8)
    assert [n.timesteps for n in counting.calls] == [(100, 300, 600), (dc.timestep,)]  # clean, then seeded
    assert len(grid) == len(settings) and all(len(labels) == len(seeds) for labels in grid)
    batch = worldeval.scene_tensor(scenes)
    for (method, record), labels in zip(settings, grid, strict=True):
        cap = organism.capture(batch, record.needs())  # what this setting alone captures
        alone = [registry.segment_capture(method, cap, i, record, (32, 32)) for i in range(len(seeds))]
        assert all(torch.equal(a, b) for a, b in zip(alone, labels, strict=True)), (method, record)


def test_merge_takes_the_union_and_refuses_other_noise():
    a = Needs((300,), attention="self")
    b = Needs((50, 300), attention=None, features=("down_last_attn1",), stop_after="auto")
    merged = harness.merge([a, b])
    assert merged.timesteps == (50, 300) and merged.attention == "self" and merged.features == ("down_last_attn1",)
    assert merged.stop_after is None  # the maps need the whole forward
    assert harness.merge([b, b]).stop_after == "auto"
    with pytest.raises(zsnb.ZsnbError, match="differ in noise"):
        harness.merge([a, dataclasses.replace(a, noise="seeded")])


def test_a_grid_refuses_images_of_another_size(organism):
    record = registry.params("diffseg", organism).record
    with pytest.raises(zsnb.ZsnbError, match="images are 64 px but these settings feed another size"):
        harness.segment_grid(organism, torch.rand(1, 3, 64, 64), [("diffseg", record)])


def test_the_same_photo_gives_the_same_segments_through_every_door(organism):
    """zsnb.segment, zsnb.capture + the adaptor and a grid all fit the whole image the same way (no crop)."""
    photo = torch.rand(3, 40, 56)
    record = registry.params("diffseg", organism).record
    direct = zsnb.segment("diffseg", organism, photo)
    cap = zsnb.capture(organism, photo, record.needs().timesteps, noise=record.noise, size=record.size)
    stepwise = registry.segment_capture("diffseg", cap, 0, record, (40, 56))
    grid = harness.segment_grid(organism, zsnb.load_image(photo, record.size)[None], [("diffseg", record)],
                                out_hw=(40, 56))
    assert torch.equal(direct, stepwise) and torch.equal(direct, grid[0][0])
