"""The organism's procedural world: RGB scenes with known ground truth at two levels.

Every scene has a dark background and 2-3 objects of mixed sizes: one large object and smaller ones placed
apart from it and from each other, with a strip of background between. (Apart, because noise blurs every
boundary: a small object drawn over a large one bleeds into it at large timesteps, which no model can tell
from binding. A placement that finds no free spot in PLACEMENT_TRIES draws is kept and drawn over what it
touches: about one scene in twelve.) Each object is one silhouette (ellipse, rotated rectangle, triangle or
Fourier blob) cut into 2-4 **parts** by parallel cuts at a random angle. The two levels are carried by
signals of different strength, so that the diffusion noise, not a choice of cue, decides which level is
visible at a timestep:

- **objects** differ by a large amplitude: each has its own base colour from a palette of well-separated hues
  and lightnesses (no two objects of a scene share one), and objects differ in size;
- **parts** of one object differ by a small amplitude: small steps of lightness and hue around the object's
  base colour, and nothing else.

Adding noise drowns the small steps first: at small timesteps both levels are visible, at large ones only
the objects are, and the smallest objects fade before the large ones.
Geometry lives in normalised coordinates and the pixel noise has its own random stream, so
`scene(seed, 64)` is `scene(seed, 32)` drawn at twice the resolution. Label maps: 0 is the background in
both; objects are 1..n in drawing order (a later one occludes an earlier one it touches); parts are numbered
globally, 1..m.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.ndimage

from zsnb.errors import ZsnbError

DESIGN: str = "objects placed apart and smaller"  # recorded per training session; change it with the design
EVAL_SEEDS: range = range(1_000_000, 1_000_500)  # held out: benchmarks and notebooks evaluate here
TRAIN_SEEDS: range = range(0, 1_000_000)  # training scenes and every choice of default parameter
DEFAULT_SIZE: int = 32

# Object base colours (hue in degrees, lightness): far apart in RGB, so objects differ by a large amplitude.
PALETTE: tuple[tuple[float, float], ...] = (
    (0.0, 0.50), (30.0, 0.62), (58.0, 0.72), (115.0, 0.45), (170.0, 0.62), (215.0, 0.52), (265.0, 0.64),
    (310.0, 0.56))
SHAPES: tuple[str, ...] = ("ellipse", "rectangle", "triangle", "blob")
PART_SHADE: float = 0.08  # largest lightness shift of a part from its object's base: small next to the palette
PART_HUE: float = 6.0  # largest hue shift (degrees) of a part from its object's base
LARGE_RADIUS: tuple[float, float] = (0.4, 0.55)  # the first, largest object
SMALL_RADIUS: tuple[float, float] = (0.2, 0.35)  # every other object
PLACEMENT_GRID: int = 64  # objects are kept apart on this grid, whatever the image size
PLACEMENT_TRIES: int = 30
PLACEMENT_MARGIN: int = 2  # pixels of the placement grid: one pixel of a 32 x 32 scene
N_OBJECTS: tuple[int, int] = (2, 3)  # objects per scene, both ends included
Rasteriser = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (yy, xx) normalised coordinates -> bool mask


@dataclass(frozen=True)
class Scene:
    """One scene: image (H, W, 3) float32 in [0, 1]; parts and objects (H, W) int64, 0 = background.

    A user's photo (`zsnb.worldeval.walkthrough`) is a Scene without ground truth: parts and objects None.
    """

    image: np.ndarray
    parts: np.ndarray | None
    objects: np.ndarray | None
    seed: int


def _hsl_to_rgb(h: np.ndarray, s: np.ndarray, lum: np.ndarray) -> np.ndarray:
    """HSL to RGB for broadcastable arrays (h in degrees, s and lum in [0, 1]); returns (..., 3)."""
    c = (1 - np.abs(2 * lum - 1)) * s
    hp = (h % 360) / 60.0
    x = c * (1 - np.abs(hp % 2 - 1))
    zeros = np.zeros_like(c)
    sector = np.floor(hp).astype(int) % 6
    table = [(c, x, zeros), (x, c, zeros), (zeros, c, x), (zeros, x, c), (x, zeros, c), (c, zeros, x)]
    rgb = np.zeros(np.broadcast(h, s, lum).shape + (3,), dtype=np.float64)
    for k, (r, g, b) in enumerate(table):
        m = sector == k
        rgb[..., 0] = np.where(m, r, rgb[..., 0])
        rgb[..., 1] = np.where(m, g, rgb[..., 1])
        rgb[..., 2] = np.where(m, b, rgb[..., 2])
    return rgb + (lum - c / 2)[..., None]


def _shape(rng: np.random.Generator, kind: str, r: float) -> Rasteriser:
    """Draw one shape of radius about `r`; returns its rasteriser (yy, xx) -> boolean mask on the grid [-1, 1]^2."""
    cy, cx = rng.uniform(-0.75 + r / 2, 0.75 - r / 2, size=2)
    theta = rng.uniform(0, np.pi)
    if kind == "ellipse":
        b = r * rng.uniform(0.6, 1.0)
    elif kind == "rectangle":
        b = r * rng.uniform(0.55, 0.9)
    elif kind == "triangle":
        angles = theta + np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.3, 0.3, size=3)
        py, px = cy + 1.3 * r * np.sin(angles), cx + 1.3 * r * np.cos(angles)
    else:  # blob: a radius that wobbles with a few low Fourier harmonics
        wobble = [(k, r * rng.uniform(0.05, 0.2), rng.uniform(0, 2 * np.pi)) for k in (2, 3)]

    def mask(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
        v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
        if kind == "ellipse":
            return (u / r) ** 2 + (v / b) ** 2 <= 1
        if kind == "rectangle":
            return (np.abs(u) <= r) & (np.abs(v) <= b)
        if kind == "triangle":
            inside = np.ones_like(xx, dtype=bool)
            for i in range(3):
                j = (i + 1) % 3
                inside &= (px[j] - px[i]) * (yy - py[i]) - (py[j] - py[i]) * (xx - px[i]) >= 0
            return inside
        phi = np.arctan2(v, u)
        return np.hypot(u, v) <= r + sum(a * np.cos(k * phi + p) for k, a, p in wobble)

    return mask


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres of a size x size image on the normalised grid [-1, 1]^2: (yy, xx), each (size, size)."""
    ax = (np.arange(size) + 0.5) / size * 2 - 1
    return np.meshgrid(ax, ax, indexing="ij")


def _place(rng: np.random.Generator, kind: str, r: float, taken: np.ndarray) -> Rasteriser:
    """Draw a shape that keeps off `taken` ((PLACEMENT_GRID,) * 2 bool, updated in place); its rasteriser.

    The test runs on a fixed grid, so the same seed places the same shapes at every image size. After
    PLACEMENT_TRIES misses the last draw is kept and drawn over what it touches.
    """
    yy, xx = _grid(PLACEMENT_GRID)
    for _ in range(PLACEMENT_TRIES):
        mask = _shape(rng, kind, r)
        footprint = mask(yy, xx)
        if not (footprint & taken).any():
            break
    # Grown by a margin, so the next object keeps a strip of background from this one.
    taken |= scipy.ndimage.binary_dilation(footprint, iterations=PLACEMENT_MARGIN)
    return mask


def scene(seed: int, size: int = DEFAULT_SIZE) -> Scene:
    """Draw scene `seed` at `size` x `size`: image (H, W, 3) in [0, 1], parts and objects (H, W)."""
    if size < 8:
        raise ZsnbError(f"size={size} is too small for a scene; use size >= 8 (the organism uses 32).")
    rng = np.random.default_rng(seed)
    yy, xx = _grid(size)

    # Background: dark and desaturated.
    bg_lum = np.full_like(xx, rng.uniform(0.08, 0.16))
    image = _hsl_to_rgb(np.full_like(xx, rng.uniform(0, 360)), np.full_like(xx, rng.uniform(0.1, 0.3)), bg_lum)

    parts = np.zeros((size, size), dtype=np.int64)
    objects = np.zeros((size, size), dtype=np.int64)
    n_objects = int(rng.integers(N_OBJECTS[0], N_OBJECTS[1] + 1))
    colours = rng.choice(len(PALETTE), size=n_objects, replace=False)
    next_part = 1
    taken = np.zeros((PLACEMENT_GRID, PLACEMENT_GRID), dtype=bool)
    for obj in range(1, n_objects + 1):
        r = rng.uniform(*(LARGE_RADIUS if obj == 1 else SMALL_RADIUS))
        mask = _place(rng, str(rng.choice(SHAPES)), r, taken)(yy, xx)
        if mask.sum() < max(4, size * size // 64):
            continue  # too small to draw at this size: skip rather than leave a one-pixel object
        n_parts = int(rng.integers(2, 5 if r > 0.35 else 3))
        hue, lum = PALETTE[colours[obj - 1]]
        sat = rng.uniform(0.7, 0.9)
        # Parallel cuts across the silhouette at a random angle, at quantiles so each part gets pixels.
        cut = rng.uniform(0, np.pi)
        d = (xx * np.cos(cut) + yy * np.sin(cut))[mask]
        edges = np.quantile(d, np.sort(rng.uniform(0.25, 0.75, size=n_parts - 1)))
        part_of_pixel = np.searchsorted(edges, d)
        shades = rng.permutation(np.linspace(-PART_SHADE, PART_SHADE, n_parts))
        hues = rng.permutation(np.linspace(-PART_HUE, PART_HUE, n_parts))
        image[mask] = _hsl_to_rgb(hue + hues[part_of_pixel], np.full(d.shape, sat), lum + shades[part_of_pixel])
        parts[mask] = next_part + part_of_pixel
        objects[mask] = obj
        next_part += n_parts

    _relabel_in_place(parts)
    _relabel_in_place(objects)
    # Pixel noise from its own stream, so the geometry drawn above is the same at every size.
    image += np.random.default_rng([seed, size]).normal(0, 0.02, size=image.shape)
    image = np.clip(image, 0, 1).astype(np.float32)
    return Scene(image=image, parts=parts, objects=objects, seed=seed)


def level_amplitudes(s: Scene) -> dict[str, float]:
    """RMS amplitude, on the model's [-1, 1] scale, of what tells each level apart in scene `s`.

    "objects": object-mean colour minus the image mean; "parts": part-mean colour minus its object's mean.
    """
    x = s.image.astype(np.float64) * 2 - 1
    object_mean, part_mean = np.zeros_like(x), np.zeros_like(x)
    for labels, means in ((s.objects, object_mean), (s.parts, part_mean)):
        for k in np.unique(labels):
            means[labels == k] = x[labels == k].mean(0)
    rms = lambda d: float(np.sqrt((d ** 2).sum(-1).mean()))  # noqa: E731
    return {"objects": rms(object_mean - x.mean((0, 1))), "parts": rms(part_mean - object_mean)}


def _relabel_in_place(labels: np.ndarray) -> None:
    """Renumber labels to 0..k-1 keeping 0 for the background (occlusion can remove whole segments)."""
    ids = np.unique(labels)
    if ids[0] != 0:
        ids = np.concatenate([[0], ids])
    labels[...] = np.searchsorted(ids, labels)


def batch(seeds: range | list[int], size: int = DEFAULT_SIZE) -> np.ndarray:
    """Images of several scenes stacked as (N, 3, H, W) float32 in [0, 1] (training input layout)."""
    return np.stack([scene(s, size).image.transpose(2, 0, 1) for s in seeds])
