"""The procedural world: determinism, two-level ground truth, colour does not solve objects."""

from __future__ import annotations

import numpy as np
import pytest

from zsnb import world


def test_scene_is_deterministic_and_well_formed():
    a, b = world.scene(7), world.scene(7)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.objects, b.objects)
    assert a.image.shape == (32, 32, 3) and a.image.dtype == np.float32
    assert 0 <= a.image.min() and a.image.max() <= 1
    assert a.parts.shape == a.objects.shape == (32, 32)
    assert not np.array_equal(world.scene(8).image, a.image)


def test_parts_nest_inside_objects():
    for seed in range(20):
        s = world.scene(seed)
        for part in np.unique(s.parts):
            assert len(np.unique(s.objects[s.parts == part])) == 1  # a part never straddles two objects
        assert (s.parts == 0).sum() == (s.objects == 0).sum()
        assert len(np.unique(s.parts)) > len(np.unique(s.objects))


def test_labels_are_compact():
    s = world.scene(3)
    for labels in (s.parts, s.objects):
        ids = np.unique(labels)
        assert ids[0] == 0 and np.array_equal(ids, np.arange(len(ids)))


def test_any_size_draws_a_scene_of_the_same_kind():
    large = world.scene(11, 64)
    assert large.image.shape == (64, 64, 3) and large.objects.shape == (64, 64)
    assert len(np.unique(large.objects)) >= 2 and len(np.unique(large.parts)) > len(np.unique(large.objects))


def test_sizes_draw_the_same_geometry():
    small, large = world.scene(11, 32), world.scene(11, 64)
    assert (large.objects[::2, ::2] == small.objects).mean() > 0.9  # pixel centres differ by half a pixel
    assert not np.array_equal(world.scene(12, 64).objects[::2, ::2], small.objects)


def test_objects_are_outlined_in_dark():
    for seed in range(10):
        s = world.scene(seed)
        dark = s.image.max(-1) < world.OUTLINE_RGB + 0.15  # outline grey plus pixel noise
        assert dark[s.objects > 0].mean() > 0.1 and dark[s.objects == 0].mean() < 0.02


def test_seed_ranges_do_not_overlap():
    assert set(world.EVAL_SEEDS).isdisjoint(range(world.TRAIN_SEEDS.start, world.TRAIN_SEEDS.stop))
    assert len(world.EVAL_SEEDS) >= 200


def test_colour_alone_does_not_solve_objects():
    """Parts of one object differ in colour; a colour-only grouping (exact hue) is part-like."""
    differing = 0
    for seed in range(30):
        s = world.scene(seed)
        for obj in np.unique(s.objects)[1:]:
            mask = s.objects == obj
            part_means = [s.image[(s.parts == p) & mask].mean(0) for p in np.unique(s.parts[mask])]
            if len(part_means) > 1 and np.ptp(np.array(part_means), axis=0).max() > 0.15:
                differing += 1
    assert differing >= 40


def test_too_small_size_is_rejected():
    with pytest.raises(ValueError, match="size"):
        world.scene(0, size=4)
