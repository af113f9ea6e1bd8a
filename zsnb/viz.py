"""All plotting of the notebooks (DiffCut's graph plots: `zsnb.ncut_viz`): one style, axes passed in, figures
saved to figures/. Label maps, images and attention maps; DiffSeg's merge stages and explorer; the
similarity survey's intra/inter plots; score-vs-threshold sweeps."""

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
from matplotlib.figure import Figure
from torch import Tensor

from zsnb import diffseg, similarity

STYLE = {
    "figure.dpi": 80,
    "savefig.dpi": 80,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.interpolation": "nearest",
}
SEGMENT_CMAP = "tab20"


def use_style() -> None:
    """Apply the project's matplotlib style (small, legible, no smoothing of label maps)."""
    plt.rcParams.update(STYLE)


FIGURES_ENV = "ZSNB_FIGURES"  # set by `make test`, so re-executing the notebooks leaves figures/ untouched
JSON_DIGITS = 6  # significant digits kept in saved JSON: the last float digits vary between CPUs and BLAS builds


def repo_root() -> Path:
    """The repository holding the working directory (the folder with pyproject.toml), else the directory."""
    here = Path.cwd().resolve()
    return next((f for f in (here, *here.parents) if (f / "pyproject.toml").exists()), here)


def figures_dir() -> Path:
    """Where figures go: $ZSNB_FIGURES if set, else the repository's figures/ folder; created if needed."""
    out = Path(os.environ.get(FIGURES_ENV) or repo_root() / "figures")
    out.mkdir(parents=True, exist_ok=True)
    return out


def save(fig: Figure, name: str) -> Path:
    """Save `fig` as <figures>/<name>.png and return the path."""
    path = figures_dir() / f"{name}.png"
    fig.savefig(path, bbox_inches="tight", metadata={"Software": None})  # no version stamp: same bytes anywhere
    return path


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


def show_image(ax: Axes, image: torch.Tensor | np.ndarray, title: str = "") -> None:
    """Draw an RGB image given as (3, H, W) or (H, W, 3) in [0, 1]."""
    arr = _np(image)
    if arr.ndim == 3 and arr.shape[0] == 3:
        arr = arr.transpose(1, 2, 0)
    ax.imshow(np.clip(arr, 0, 1))
    ax.set_title(title)
    ax.axis("off")


def show_labels(ax: Axes, labels: torch.Tensor | np.ndarray, title: str = "", image=None, alpha: float = 0.6) -> None:
    """Draw an integer label map (H, W), optionally over an image."""
    arr = _np(labels)
    if image is not None:
        show_image(ax, image)
    ax.imshow(arr % 20, cmap=SEGMENT_CMAP, vmin=0, vmax=19, alpha=alpha if image is not None else 1.0)
    ax.set_title(title)
    ax.axis("off")


def show_map(ax: Axes, values: torch.Tensor | np.ndarray, title: str = "", query: tuple[int, int] | None = None,
             cmap: str = "magma") -> None:
    """Draw a 2-D map (e.g. one query's attention over keys), marking the query pixel if given."""
    ax.imshow(_np(values), cmap=cmap)
    if query is not None:
        ax.plot(query[1], query[0], marker="+", color="cyan", markersize=8, mew=1.5)
    ax.set_title(title)
    ax.axis("off")


def show_query_row(axes: Sequence[Axes], image: torch.Tensor, maps: dict[int, torch.Tensor],
                   query: tuple[float, float], title: str = "") -> None:
    """Image with the query marked, then its attention map at each side: len(axes) == 1 + len(maps)."""
    show_image(axes[0], image, title)
    side_px = image.shape[-1]
    axes[0].plot(query[1] * side_px, query[0] * side_px, marker="+", color="cyan", markersize=8, mew=1.5)
    for ax, (side, m) in zip(axes[1:], maps.items(), strict=True):
        show_map(ax, m, f"{side}x{side}", query=(query[0] * side, query[1] * side))


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
        fig, axes = plt.subplots(1, len(maps) + 1, figsize=(2 * (len(maps) + 1), 2))
        show_query_row(axes, image, maps, (row, col), f"t={t}")
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
    ax.legend(fontsize=7)


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
    ax.legend(fontsize=7)


def plot_stages(axes: Sequence[Axes], stages: Sequence[Tensor], image: Any) -> None:
    """Draw each iteration's (n_i, R, R) proposals as argmax labels ("NMS") over the (H, W, 3) image."""
    image = np.clip(np.asarray(image), 0, 1)
    for it, (ax, props) in enumerate(zip(axes, stages, strict=True)):
        labels = diffseg.assign(props, image.shape[0])
        ax.imshow(image)
        ax.imshow(labels.numpy() % 20, cmap="tab20", vmin=0, vmax=19, alpha=0.6)
        ax.set_title(f"iteration {it}: {len(props)} proposals\n-> {int(labels.max()) + 1} segments")
        ax.axis("off")


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
    axes[0].legend(fontsize=6)
    axes[2].legend(fontsize=6)


def diffseg_explorer(aggregated: Tensor, image: Any) -> Callable[..., Figure]:
    """`show_diffseg` bound to one aggregate and image: f(kl_threshold, num_points, iterations) -> figure."""

    def explore(kl_threshold: float = 1.1, num_points: int = 16, iterations: int = 3) -> Figure:
        return show_diffseg(aggregated, image, kl_threshold, num_points, iterations)

    return explore


LOG_RANGE = 1e3  # show_maps_shared's log scale spans three decades; fainter values are drawn at its floor


def show_maps_shared(axes: Sequence[Axes], maps: Sequence[Tensor | np.ndarray], titles: Sequence[str],
                     query: tuple[int, int] | None = None, log: bool = False, cmap: str = "magma") -> Any:
    """Draw (h, w) maps on one colour scale, from 0 (log: LOG_RANGE below the top) to the top of all maps.

    query (row, col) on the maps' grid is marked on each map; returns the scale's mappable for `fig.colorbar`.
    """
    from matplotlib.colors import LogNorm, Normalize

    arrays = [_np(m) for m in maps]
    top = max(float(a.max()) for a in arrays)
    norm = LogNorm(top / LOG_RANGE, top) if log else Normalize(0.0, top)
    for ax, a, title in zip(axes, arrays, titles, strict=True):
        shown = ax.imshow(np.clip(a, norm.vmin, None) if log else a, cmap=cmap, norm=norm)
        if query is not None:
            ax.plot(query[1], query[0], marker="+", color="cyan", markersize=8, mew=1.5)
        ax.set_title(title)
        ax.axis("off")
    return shown


def mark_points(ax: Axes, points: Mapping[str, tuple[float, float]], hw: tuple[int, int]) -> None:
    """Mark named (row, col) points, fractions of the side, on an (H, W) image drawn on ax: colours C0, C1, ..."""
    for k, (name, (fy, fx)) in enumerate(points.items()):
        y, x = fy * hw[0], fx * hw[1]
        ax.plot(x, y, "+", color=f"C{k}", ms=10, mew=2)
        ax.annotate(name, (x, y), xytext=(4, 4), textcoords="offset points", color=f"C{k}", fontsize=8,
                    fontweight="bold")
