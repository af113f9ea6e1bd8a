"""Plots for DiffCut's graph stage (notebook 05): recursion tree, Fiedler vector, a tau/alpha explorer.

Every function draws on axes it is given or returns a callable for `ipywidgets.interact`; label colours match
`zsnb.viz.show_labels` (`viz.segment_colour`), so a leaf in the tree has the colour of its segment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, OffsetImage

from zsnb import diffcut, viz

MAX_THUMBNAILS: int = 63  # above this many nodes the tree is drawn with dots instead of mask thumbnails
INNER_RGB: tuple[float, float, float] = (0.35, 0.35, 0.35)  # mask colour of nodes that were split
OUTSIDE_RGB: tuple[float, float, float] = (0.93, 0.93, 0.93)  # tokens outside a node's segment


def tree_layout(nodes: Sequence[diffcut.NCutNode]) -> dict[int, tuple[float, float]]:
    """Node index -> (x, y): leaves at x = 0, 1, ... in visiting order, parents above their children."""
    children: dict[int, list[int]] = {}
    for n in nodes:
        if n.parent is not None:
            children.setdefault(n.parent, []).append(n.index)
    pos: dict[int, tuple[float, float]] = {}
    leaf_x = 0.0
    for n in reversed(nodes):  # pre-order reversed: every child is placed before its parent
        kids = children.get(n.index, [])
        if kids:
            x = float(np.mean([pos[k][0] for k in kids]))
        else:
            x, leaf_x = leaf_x, leaf_x + 1
        pos[n.index] = (x, -float(n.depth))
    n_leaves = leaf_x
    return {i: (n_leaves - 1 - x, y) for i, (x, y) in pos.items()}  # flip: "1" sides on the left


def _thumbnail(node: diffcut.NCutNode) -> np.ndarray:
    """(h, w, 3) picture of a node's mask: its leaf colour (or grey when split) on light grey."""
    colour = INNER_RGB if node.label is None else viz.segment_colour(node.label)
    mask = node.mask.cpu().numpy()[..., None]
    return np.where(mask, np.array(colour), np.array(OUTSIDE_RGB))


def _node_text(node: diffcut.NCutNode) -> str:
    """Caption: the node's best NCut (if one was computed) and, for leaves, why it stopped."""
    value = "" if np.isnan(node.ncut) else f"{node.ncut:.2f}"
    if node.label is None:
        return value
    return f"#{node.label} {value}\n{node.stop}" if node.stop != "ncut >= tau" else f"#{node.label} {value}"


def draw_tree(ax: Axes, nodes: Sequence[diffcut.NCutNode], thumb_px: float = 40.0) -> None:
    """Draw `recursive_ncut_tree` nodes: each node's mask, its best NCut, and for leaves the label and stop.

    Split nodes show the NCut of the cut that was made (< tau); leaves stopped by "ncut >= tau" show the
    cheapest cut that was refused; other stops (min_size, max_depth, ...) are named under the leaf.
    """
    pos = tree_layout(nodes)
    for n in nodes:
        if n.parent is not None:
            (x0, y0), (x1, y1) = pos[n.parent], pos[n.index]
            ax.plot([x0, x1], [y0, y1], color="0.6", lw=0.8, zorder=1)
    thumbs = len(nodes) <= MAX_THUMBNAILS
    side = max(n.mask.shape[0] for n in nodes) if nodes[0].mask.ndim == 2 else 1
    for n in nodes:
        x, y = pos[n.index]
        if thumbs and n.mask.ndim == 2:
            img = OffsetImage(_thumbnail(n), zoom=thumb_px / side, interpolation="nearest")
            ax.add_artist(AnnotationBbox(img, (x, y), frameon=True, pad=0.1, zorder=2))
        else:
            colour = INNER_RGB if n.label is None else viz.segment_colour(n.label)
            ax.scatter([x], [y], s=40, color=colour, zorder=2)
        ax.annotate(_node_text(n), (x, y), xytext=(0, -thumb_px * 0.75), textcoords="offset points",
                    ha="center", va="top", fontsize=8)
    xs = [p[0] for p in pos.values()]
    depth = max(n.depth for n in nodes)
    ax.set_xlim(min(xs) - 0.7, max(xs) + 0.7)
    ax.set_ylim(-depth - 0.9, 0.5)
    ax.axis("off")


def show_fiedler(ax: Axes, vector: torch.Tensor, part: torch.Tensor, title: str = "") -> None:
    """Second generalised eigenvector (h, w) on a diverging map, with the chosen cut's boundary drawn."""
    v = vector.detach().cpu().double().numpy()
    lim = float(np.abs(v).max()) or 1.0
    viz.share_scale([viz.show_map(ax, v, title, cmap="coolwarm")], limits=(-lim, lim), colorbar=False)  # 0: white
    ax.contour(part.cpu().numpy().astype(float), levels=[0.5], colors="k", linewidths=1.2)


def explorer(features: torch.Tensor, image: torch.Tensor, query: tuple[int, int],
             out_size: int | None = None, gt: torch.Tensor | None = None) -> Callable[..., Figure]:
    """Features (h, w, C), image (3, H, W) -> update(tau, alpha) -> figure: affinity row, leaves, labels, PAMR.

    gt (out_size, out_size): colour the final segments by their ground-truth match (`viz.match_to_gt`).
    """
    h, w = features.shape[:2]
    size = out_size or image.shape[-1]

    def update(tau: float = 0.5, alpha: float = 10.0) -> Figure:
        row = diffcut.affinity(features, alpha)[query[0] * w + query[1]].reshape(h, w)
        leaves = diffcut.recursive_ncut(features, tau, alpha)
        coarse = diffcut.segment(features, tau=tau, alpha=alpha, out_size=size, refine=False)
        fine = diffcut.segment(features, image=image, tau=tau, alpha=alpha, out_size=size)
        fig, axes = plt.subplots(1, 5, figsize=(10, 2.4))
        affinity = viz.show_map(axes[0], row, f"affinity, alpha={alpha:g}", query=query)
        viz.share_scale([affinity], limits=(0, 1), colorbar=False)  # weights lie in [0, 1]
        viz.show_labels(axes[1], leaves, f"NCut leaves: {leaves.unique().numel()}")
        viz.show_labels(axes[2], coarse, "concept assignment", image=image)
        viz.show_labels(axes[3], fine, f"PAMR: {fine.unique().numel()} segments", image=image)
        viz.show_labels(axes[4], fine, "PAMR, flat colours", gt=gt)
        return fig

    return update
