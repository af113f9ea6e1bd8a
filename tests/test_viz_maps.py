"""Plot helpers of the real-photo sections: one colour scale across maps, named points."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import torch

from zsnb import viz

matplotlib.use("Agg")


def test_maps_share_one_scale_up_to_the_largest_value():
    maps = [torch.full((4, 4), 0.01), torch.eye(4) * 0.5]
    fig, axes = plt.subplots(1, 2)
    for log, low in ((False, 0.0), (True, 0.5 / viz.LOG_RANGE)):
        scale = viz.show_maps_shared(axes, maps, ["flat", "peaked"], query=(1, 2), log=log)
        norms = {(im.norm.vmin, im.norm.vmax) for ax in axes for im in ax.images[-1:]}
        assert norms == {(low, 0.5)} and (scale.norm.vmin, scale.norm.vmax) == (low, 0.5)
    plt.close(fig)


def test_points_marked_at_fractions_of_the_image():
    fig, ax = plt.subplots()
    viz.mark_points(ax, {"a": (0.5, 0.25), "b": (0.0, 1.0)}, (40, 80))
    assert [tuple(line.get_xydata()[0]) for line in ax.lines] == [(20.0, 20.0), (80.0, 0.0)]
    assert [t.get_text() for t in ax.texts] == ["a", "b"]
    plt.close(fig)
