"""The procedural world: determinism, two-level ground truth, coarse objects and fine parts."""

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


def test_objects_differ_coarsely_and_parts_finely():
    """Neighbouring objects' mean colours are far apart; an object's parts' mean colours are close."""
    object_gaps, part_gaps = [], []
    for seed in range(30):
        s = world.scene(seed)
        means = {o: s.image[s.objects == o].mean(0) for o in np.unique(s.objects)}
        object_gaps += [np.abs(means[a] - means[b]).max() for a in means for b in means if a < b]
        for obj in np.unique(s.objects)[1:]:
            mask = s.objects == obj
            ps = [s.image[(s.parts == p) & mask].mean(0) for p in np.unique(s.parts[mask])]
            part_gaps += [np.abs(a - b).max() for i, a in enumerate(ps) for b in ps[i + 1:]]
    assert np.median(object_gaps) > 0.5 and np.median(object_gaps) > 2 * np.median(part_gaps)


def test_parts_of_an_object_differ_in_shade():
    """Inside an object, every part has its own mean colour (the shade steps), so no two parts look alike."""
    for seed in range(20):
        s = world.scene(seed)
        for obj in np.unique(s.objects)[1:]:
            mask = s.objects == obj
            means = [s.image[(s.parts == p) & mask].mean(0) for p in np.unique(s.parts[mask])]
            gaps = [np.abs(a - b).max() for i, a in enumerate(means) for b in means[i + 1:]]
            assert min(gaps) > 0.02, (seed, obj, gaps)


def test_object_sizes_are_mixed():
    areas = []
    for seed in range(40):
        s = world.scene(seed)
        counts = np.bincount(s.objects.ravel())[1:]
        areas.append(counts.max() / max(counts.min(), 1))
    assert np.median(areas) > 2.5


def _touching(objects: np.ndarray) -> bool:
    """Whether two different objects share an edge anywhere in an (H, W) object map."""
    pairs = ((objects[:, 1:], objects[:, :-1]), (objects[1:], objects[:-1]))
    return any(((a != b) & (a > 0) & (b > 0)).any() for a, b in pairs)


def test_objects_keep_apart():
    """Objects sit on the background with a strip between them; only a placement that ran out of tries touches."""
    touching = [_touching(world.scene(seed, 64).objects) for seed in range(100)]
    assert 0 < np.mean(touching) < 0.15
    assert _touching(np.array([[1, 2]])) and not _touching(np.array([[1, 0, 2]]))


def test_seed_ranges_do_not_overlap():
    assert set(world.EVAL_SEEDS).isdisjoint(range(world.TRAIN_SEEDS.start, world.TRAIN_SEEDS.stop))
    assert len(world.EVAL_SEEDS) >= 200


def test_too_small_size_is_rejected():
    with pytest.raises(ValueError, match="size"):
        world.scene(0, size=4)


def test_level_amplitudes_order_objects_above_parts():
    amps = [world.level_amplitudes(world.scene(seed)) for seed in range(20)]
    assert np.median([a["objects"] for a in amps]) > 3 * np.median([a["parts"] for a in amps])


def test_level_amplitudes_of_a_flat_scene_are_zero():
    flat = world.Scene(np.full((8, 8, 3), 0.5, dtype=np.float32), np.zeros((8, 8), int), np.zeros((8, 8), int), 0)
    assert world.level_amplitudes(flat) == {"objects": 0.0, "parts": 0.0}
