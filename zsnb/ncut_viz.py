"""Plots for DiffCut's graph stage (notebook 05): recursion tree, Fiedler vector, PAMR's kernel, a tau/alpha explorer.

Every function draws on axes it is given or returns a callable for `ipywidgets.interact`; label colours match
`zsnb.viz.show_labels` (`viz.segment_colour`), so a leaf in the tree has the colour of its segment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from matplotlib.transforms import offset_copy

from zsnb import diffcut, pamr, viz

MAX_THUMBNAILS: int = 63  # above this many nodes the tree is drawn with dots instead of mask thumbnails
INNER_RGB: tuple[float, float, float] = (0.35, 0.35, 0.35)  # mask colour of nodes that were split
OUTSIDE_RGB: tuple[float, float, float] = (1.0, 1.0, 1.0)  # tokens outside a node's segment (white: grey shows)
OUTLINE_RGB: tuple[float, float, float] = (0.1, 0.1, 0.1)  # drawn around every node's mask
THUMB_UPSAMPLE: int = 4  # thumbnail pixels per token, so the outline is thinner than a token
STOP_RGB: tuple[float, float, float] = (0.80, 0.10, 0.10)  # marks leaves that tau stopped


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


def _inner_edge(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> True on mask pixels with a 4-neighbour inside the picture that lies outside the mask."""
    out = np.zeros_like(mask)
    out[1:] |= ~mask[:-1]
    out[:-1] |= ~mask[1:]
    out[:, 1:] |= ~mask[:, :-1]
    out[:, :-1] |= ~mask[:, 1:]
    return out & mask


def _thumbnail(node: diffcut.NCutNode) -> np.ndarray:
    """(h s, w s, 3) picture of a node's mask: its leaf colour (or grey when split) on white, outlined in black."""
    colour = INNER_RGB if node.label is None else viz.segment_colour(node.label)
    s = THUMB_UPSAMPLE
    mask = np.kron(node.mask.cpu().numpy().astype(bool), np.ones((s, s), dtype=bool))
    rgb = np.where(mask[..., None], np.array(colour), np.array(OUTSIDE_RGB))
    rgb[_inner_edge(mask)] = OUTLINE_RGB
    return rgb


def _threshold(tau: float | Mapping[int, float] | None, node: diffcut.NCutNode) -> str | None:
    """How the caption names the threshold node had to beat: "τ", a number (per-node thresholds), or None."""
    if tau is None:
        return None
    if isinstance(tau, Mapping):
        return f"{tau[node.index]:.2f}"
    return "τ"


def _node_text(node: diffcut.NCutNode, tau: float | Mapping[int, float] | None = None) -> str:
    """Caption: the node's best NCut (if one was computed), its comparison with tau, and for leaves the label."""
    value = "" if np.isnan(node.ncut) else f"{node.ncut:.2f}"
    limit = _threshold(tau, node)
    if limit is not None and value:
        if node.stop == "split":
            value = f"{value} < {limit}"
        elif node.stop == "ncut >= tau":
            value = f"{value} ≥ {limit}"
    if node.label is None:
        return value
    return f"#{node.label} {value}\n{node.stop}" if node.stop != "ncut >= tau" else f"#{node.label} {value}"


def draw_tree(ax: Axes, nodes: Sequence[diffcut.NCutNode], thumb_px: float = 40.0,
              tau: float | Mapping[int, float] | None = None) -> None:
    """Draw `recursive_ncut_tree` nodes: each node's mask, its best NCut, and for leaves the label and stop.

    Split nodes show the NCut of the cut that was made (< tau); leaves stopped by "ncut >= tau" show the
    cheapest cut that was refused; other stops (min_size, max_depth, ...) are named under the leaf.
    tau (a float, or node index -> the threshold that node had to beat): captions compare each NCut with it,
    leaves that tau stopped get a red bar under them, and a note at the top left says what the bar means.
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
            img = OffsetImage(_thumbnail(n), zoom=thumb_px / (side * THUMB_UPSAMPLE), interpolation="nearest")
            ax.add_artist(AnnotationBbox(img, (x, y), frameon=True, pad=0.1, zorder=2))
        else:
            colour = INNER_RGB if n.label is None else viz.segment_colour(n.label)
            ax.scatter([x], [y], s=40, color=colour, zorder=2)
        stopped = tau is not None and n.stop == "ncut >= tau"
        ax.annotate(_node_text(n, tau), (x, y), xytext=(0, -thumb_px * 0.75), textcoords="offset points",
                    ha="center", va="top", fontsize=8, color=STOP_RGB if stopped else "black")
        if stopped:  # a bar under the leaf: the recursion stops here because the best cut costs >= tau
            below = offset_copy(ax.transData, fig=ax.figure, y=-thumb_px * 0.62, units="points")
            ax.plot([x - 0.3, x + 0.3], [y, y], color=STOP_RGB, lw=3, solid_capstyle="butt", zorder=3,
                    transform=below)
    if tau is not None:
        rule = (f"τ = {tau:g}: split while the best NCut < τ; red bar: the recursion stops (best NCut ≥ τ)"
                if not isinstance(tau, Mapping) else
                "split while the best NCut < the node's threshold; red bar: the recursion stops (best NCut ≥ it)")
        ax.text(0.5, 1.02, rule,
                transform=ax.transAxes, ha="center", va="bottom", fontsize=9, color=STOP_RGB)
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


def show_two_blobs(axes: Sequence[Axes], w: torch.Tensor, vector: torch.Tensor, blob: torch.Tensor) -> None:
    """A small graph's affinity W (n, n) with a colour bar, and its Fiedler vector (n,) as bars coloured by blob."""
    im = viz.show_map(axes[0], w.double(), f"affinity W ({len(w)} nodes)", cmap="magma")
    viz.share_scale([im], "weight", axes[0], limits=(0.0, float(w.max())))
    axes[0].figure.subplots_adjust(wspace=0.6)  # room for the colour bar between the panels
    v = vector.detach().cpu().double().numpy()
    colours = [viz.segment_colour(1 + int(b)) for b in blob.tolist()]
    ax = axes[1]
    ax.bar(np.arange(len(v)), v, color=colours)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(v)))
    ax.set_xlabel("node (colour: its blob)")
    ax.set_ylabel("Fiedler entry")
    ax.set_title("Fiedler vector: its sign is the cut")


def pamr_kernel(image: torch.Tensor, pixel: tuple[int, int], dilations: Sequence[int]) -> np.ndarray:
    """Image (3, H, W), pixel (y, x) -> (2 d + 1, 2 d + 1) PAMR weights of its neighbours around it (d the
    largest dilation; NaN where PAMR takes no neighbour): the kernel one iteration averages labels with."""
    weights = pamr.pamr_weights(image, tuple(dilations))[:, pixel[0], pixel[1]].cpu().double().numpy()
    d = max(dilations)
    canvas = np.full((2 * d + 1, 2 * d + 1), np.nan)
    taps = [(dil * dy, dil * dx) for dil in dilations for dy, dx in pamr.OFFSETS if dy or dx]  # pamr's order
    for (dy, dx), wt in zip(taps, weights, strict=True):
        canvas[d + dy, d + dx] = wt
    return canvas


def kernel_share(image: torch.Tensor, labels: torch.Tensor, pixel: tuple[int, int],
                 dilations: Sequence[int]) -> float:
    """Share of PAMR's kernel weight at pixel (y, x) on neighbours whose label equals the pixel's own label in
    labels (H, W); neighbours beyond the border are the edge pixels, as PAMR's replicate padding has it."""
    y, x = pixel
    h, w = labels.shape
    weights = pamr.pamr_weights(image, tuple(dilations))[:, y, x]
    taps = [(dil * dy, dil * dx) for dil in dilations for dy, dx in pamr.OFFSETS if dy or dx]  # pamr's order
    same = [bool(labels[min(max(y + dy, 0), h - 1), min(max(x + dx, 0), w - 1)] == labels[y, x]) for dy, dx in taps]
    return float(sum(float(wt) for wt, s in zip(weights, same, strict=True) if s))


def show_pamr(axes: Sequence[Axes], image: torch.Tensor, coarse: torch.Tensor, pixel: tuple[int, int],
              iterations: Sequence[int], dilations: Sequence[int], gt: torch.Tensor | None = None
              ) -> list[torch.Tensor]:
    """Image with the pixel, PAMR's kernel there (with a colour bar), and the labels after each number of
    iterations (0: the coarse map): len(axes) == 2 + len(iterations). gt (H, W): colour segments by their
    ground-truth match (`viz.match_to_gt`). Returns the label maps drawn."""
    y, x = pixel
    d = max(dilations)
    viz.show_image(axes[0], image, "image (pixel +)")
    axes[0].plot(x, y, "c+", ms=10, mew=2)
    axes[0].add_patch(plt.Rectangle((x - d - 0.5, y - d - 0.5), 2 * d + 1, 2 * d + 1, fill=False, ec="c", lw=1))
    kernel = viz.show_map(axes[1], pamr_kernel(image, pixel, dilations), "PAMR kernel at +", cmap="magma")
    axes[1].plot(d, d, "c+", ms=10, mew=2)
    viz.share_scale([kernel], "", axes[1], limits=(0.0, float(np.nanmax(kernel.get_array()))))  # title names it
    maps = []
    for ax, k in zip(axes[2:], iterations, strict=True):
        lab = coarse if k == 0 else pamr.pamr(image, coarse, k, tuple(dilations))
        maps.append(lab)
        viz.show_labels(ax, lab, "concept assignment" if k == 0 else f"PAMR, {k} iteration{'s' * (k > 1)}",
                        image=image, gt=gt)
        ax.plot(x, y, "c+", ms=10, mew=2)
    return maps


def draw_setting(axes: Sequence[Axes], features: torch.Tensor, image: torch.Tensor, query: tuple[int, int],
                 tau: float, alpha: float, out_size: int | None = None, gt: torch.Tensor | None = None) -> None:
    """One (tau, alpha) setting on 5 axes: affinity row, NCut leaves, concept assignment, PAMR, PAMR flat."""
    h, w = features.shape[:2]
    size = out_size or image.shape[-1]
    row = diffcut.affinity(features, alpha)[query[0] * w + query[1]].reshape(h, w)
    leaves = diffcut.recursive_ncut(features, tau, alpha)
    coarse = diffcut.segment(features, tau=tau, alpha=alpha, out_size=size, refine=False)
    fine = diffcut.segment(features, image=image, tau=tau, alpha=alpha, out_size=size)
    affinity = viz.show_map(axes[0], row, f"affinity, α={alpha:g}", query=query)
    viz.share_scale([affinity], limits=(0, 1), colorbar=False)  # weights lie in [0, 1]
    viz.show_labels(axes[1], leaves, f"τ={tau:g}: {leaves.unique().numel()} leaves")
    viz.show_labels(axes[2], coarse, "concept assignment", image=image, gt=gt)
    viz.show_labels(axes[3], fine, f"PAMR: {fine.unique().numel()} segments", image=image, gt=gt)
    viz.show_labels(axes[4], fine, "PAMR, flat colours", gt=gt)


def small_multiples(features: torch.Tensor, image: torch.Tensor, query: tuple[int, int],
                    settings: Sequence[tuple[float, float]], out_size: int | None = None,
                    gt: torch.Tensor | None = None) -> Figure:
    """The explorer's panels at a few (tau, alpha) settings, one row each: the static version of `explorer`."""
    fig, axes = plt.subplots(len(settings), 5, figsize=(10, 2.3 * len(settings)), squeeze=False)
    for row, (tau, alpha) in zip(axes, settings, strict=True):
        draw_setting(row, features, image, query, tau, alpha, out_size, gt)
    return fig


def explorer(features: torch.Tensor, image: torch.Tensor, query: tuple[int, int],
             out_size: int | None = None, gt: torch.Tensor | None = None) -> Callable[..., Figure]:
    """Features (h, w, C), image (3, H, W) -> update(tau, alpha) -> figure: affinity row, leaves, labels, PAMR.

    gt (out_size, out_size): colour the final segments by their ground-truth match (`viz.match_to_gt`).
    """

    def update(tau: float = 0.5, alpha: float = 10.0) -> Figure:
        fig, axes = plt.subplots(1, 5, figsize=(10, 2.4))
        draw_setting(axes, features, image, query, tau, alpha, out_size, gt)
        return fig

    return update
