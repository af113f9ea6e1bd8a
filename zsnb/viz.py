"""Plotting helpers shared by the notebooks: one style, axes passed in, figures saved to figures/."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

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
