"""Plot helpers of the real-photo sections: one logarithmic colour scale across maps, named points."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

from zsnb import viz

matplotlib.use("Agg")


def test_log_scale_spans_log_range_below_the_largest_value_and_lifts_fainter_ones_to_its_floor():
    maps = [torch.full((4, 4), 0.01), torch.eye(4) * 0.5]  # the eye's zeros have no logarithm
    fig, axes = plt.subplots(1, 3)
    ims = [viz.show_map(ax, m, name, query=(1, 2)) for ax, m, name in zip(axes, maps, ["flat", "peaked"], strict=False)]
    cbar = viz.share_scale(ims, "attention", axes[:2], log=True)
    low = 0.5 / viz.LOG_RANGE
    assert all(im.norm is ims[0].norm for im in ims) and (cbar.norm.vmin, cbar.norm.vmax) == (low, 0.5)
    assert np.isclose(ims[1].get_array().min(), low) and not np.ma.is_masked(ims[1].get_array())
    assert np.isclose(ims[0].get_array().min(), 0.01)  # values on the scale stay as they are
    plt.close(fig)


def test_points_marked_at_fractions_of_the_image():
    fig, ax = plt.subplots()
    viz.mark_points(ax, {"a": (0.5, 0.25), "b": (0.0, 1.0)}, (40, 80))
    assert [tuple(line.get_xydata()[0]) for line in ax.lines] == [(20.0, 20.0), (80.0, 0.0)]
    assert [t.get_text() for t in ax.texts] == ["a", "b"]
    plt.close(fig)
