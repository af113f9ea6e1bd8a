"""The organism's procedural world: RGB scenes with known ground truth at two levels.

Every scene has a textured background and 2-4 overlapping objects. Each object is one silhouette (ellipse,
rotated rectangle, triangle or Fourier blob) cut into 2-4 **parts** by parallel cuts at a random angle.
The two levels are carried by different cues, so that colour alone cannot solve the object level:

- parts of one object differ in **hue** but share the object's **lightness**, stripe **orientation** and
  stripe **period** (a texture running continuously across the part boundaries);
- every object has a dark **outline** along its silhouette (one pixel wide at 32x32), so where an object
  ends is a shape cue, not a colour cue; outlines of occluded objects are cut by the occluder;
- different objects draw hues independently from one small palette, so they often share colours;
- the background is a dim, desaturated gradient with its own coarse stripes and pixel noise.

Geometry lives in normalised coordinates and the pixel noise has its own random stream, so
`scene(seed, 64)` is `scene(seed, 32)` drawn at twice the resolution (outlines scale with the size).
Label maps: 0 is the background in both; objects are 1..n in depth order (later ones occlude earlier
ones); parts are numbered globally, 1..m.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zsnb.errors import ZsnbError

EVAL_SEEDS: range = range(1_000_000, 1_000_500)  # held out: benchmarks and notebooks evaluate here
TRAIN_SEEDS: range = range(0, 1_000_000)  # training scenes and every choice of default parameter
DEFAULT_SIZE: int = 32

# Hue palette (degrees); lightness and saturation come from the object, so parts of different objects
# can share a hue while parts of one object never do.
HUES: tuple[float, ...] = (0.0, 40.0, 75.0, 130.0, 185.0, 220.0, 270.0, 315.0)
SHAPES: tuple[str, ...] = ("ellipse", "rectangle", "triangle", "blob")
OUTLINE_RGB: float = 0.05  # outline grey level, darker than any background pixel


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


def _silhouette(rng: np.random.Generator, kind: str, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Boolean mask (H, W) of one shape on the normalised grid [-1, 1]^2."""
    cy, cx = rng.uniform(-0.55, 0.55, size=2)
    r = rng.uniform(0.35, 0.6)
    theta = rng.uniform(0, np.pi)
    u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    if kind == "ellipse":
        a, b = r, r * rng.uniform(0.55, 1.0)
        return (u / a) ** 2 + (v / b) ** 2 <= 1
    if kind == "rectangle":
        a, b = r, r * rng.uniform(0.5, 0.9)
        return (np.abs(u) <= a) & (np.abs(v) <= b)
    if kind == "triangle":
        angles = theta + np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.3, 0.3, size=3)
        py, px = cy + 1.2 * r * np.sin(angles), cx + 1.2 * r * np.cos(angles)
        inside = np.ones_like(xx, dtype=bool)
        for i in range(3):
            j = (i + 1) % 3
            cross = (px[j] - px[i]) * (yy - py[i]) - (py[j] - py[i]) * (xx - px[i])
            inside &= cross >= 0
        return inside
    # blob: a radius that wobbles with a few low Fourier harmonics
    phi = np.arctan2(v, u)
    radius = np.full_like(phi, r)
    for k in (2, 3):
        radius += r * rng.uniform(0.05, 0.2) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    return np.hypot(u, v) <= radius


def _stripes(yy: np.ndarray, xx: np.ndarray, angle: float, period: float, phase: float) -> np.ndarray:
    """Smooth stripes in [0, 1] of a given orientation and period (normalised units), (H, W)."""
    d = xx * np.cos(angle) + yy * np.sin(angle)
    return 0.5 + 0.5 * np.cos(2 * np.pi * d / period + phase)


def scene(seed: int, size: int = DEFAULT_SIZE) -> Scene:
    """Draw scene `seed` at `size` x `size`: image (H, W, 3) in [0, 1], parts and objects (H, W)."""
    if size < 8:
        raise ZsnbError(f"size={size} is too small for a scene; use size >= 8 (the organism uses 32).")
    rng = np.random.default_rng(seed)
    ax = (np.arange(size) + 0.5) / size * 2 - 1
    yy, xx = np.meshgrid(ax, ax, indexing="ij")

    # Background: dim, desaturated gradient with coarse stripes and pixel noise.
    g_angle = rng.uniform(0, 2 * np.pi)
    ramp = 0.5 + 0.5 * (xx * np.cos(g_angle) + yy * np.sin(g_angle)) / np.sqrt(2)
    bg_lum = 0.18 + 0.14 * ramp + 0.05 * _stripes(yy, xx, rng.uniform(0, np.pi), rng.uniform(0.6, 1.2), 0)
    image = _hsl_to_rgb(np.full_like(xx, rng.choice(HUES)), np.full_like(xx, rng.uniform(0.1, 0.3)), bg_lum)

    parts = np.zeros((size, size), dtype=np.int64)
    objects = np.zeros((size, size), dtype=np.int64)
    n_objects = int(rng.integers(2, 5))
    next_part = 1
    for obj in range(1, n_objects + 1):
        mask = _silhouette(rng, str(rng.choice(SHAPES)), yy, xx)
        if mask.sum() < max(4, size * size // 64):
            continue  # too small to draw at this size: skip rather than leave a one-pixel object
        n_parts = int(rng.integers(2, 5))
        hues = rng.choice(HUES, size=n_parts, replace=False)
        lum = rng.uniform(0.45, 0.75)
        sat = rng.uniform(0.65, 0.95)
        # Parallel cuts across the silhouette at a random angle, at quantiles so each part gets pixels.
        cut = rng.uniform(0, np.pi)
        d = (xx * np.cos(cut) + yy * np.sin(cut))[mask]
        edges = np.quantile(d, np.sort(rng.uniform(0.2, 0.8, size=n_parts - 1)))
        part_of_pixel = np.searchsorted(edges, d)
        texture = _stripes(yy, xx, rng.uniform(0, np.pi), rng.uniform(0.18, 0.35), rng.uniform(0, 6.3))[mask]
        colour = _hsl_to_rgb(hues[part_of_pixel], np.full(d.shape, sat), lum * (0.8 + 0.3 * texture))
        image[mask] = colour
        image[_outline(mask, max(1, size // 32))] = OUTLINE_RGB
        parts[mask] = next_part + part_of_pixel
        objects[mask] = obj
        next_part += n_parts

    _relabel_in_place(parts)
    _relabel_in_place(objects)
    # Pixel noise from its own stream, so the geometry drawn above is the same at every size.
    image += np.random.default_rng([seed, size]).normal(0, 0.03, size=image.shape)
    image = np.clip(image, 0, 1).astype(np.float32)
    return Scene(image=image, parts=parts, objects=objects, seed=seed)


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels of `mask` (H, W) within `width` pixels (4-neighbour steps) of its border."""
    inner = mask.copy()
    for _ in range(width):
        padded = np.pad(inner, 1, constant_values=True)  # the frame is no border
        inner = inner & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def _relabel_in_place(labels: np.ndarray) -> None:
    """Renumber labels to 0..k-1 keeping 0 for the background (occlusion can remove whole segments)."""
    ids = np.unique(labels)
    if ids[0] != 0:
        ids = np.concatenate([[0], ids])
    labels[...] = np.searchsorted(ids, labels)


def batch(seeds: range | list[int], size: int = DEFAULT_SIZE) -> np.ndarray:
    """Images of several scenes stacked as (N, 3, H, W) float32 in [0, 1] (training input layout)."""
    return np.stack([scene(s, size).image.transpose(2, 0, 1) for s in seeds])
