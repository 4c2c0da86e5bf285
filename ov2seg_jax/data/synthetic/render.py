"""Scenes of moving shapes and their pixels: shape masks, bouncing motion, occlusion in depth
order, the noisy background, and the per-video scene as a pure function of ``(spec, seed)``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ov2seg_jax.data.synthetic.categories import COLOURS, SHAPES, assign_categories
from ov2seg_jax.data.synthetic.spec import SPLITS, SyntheticSpec, check_split

NOISE_AMPLITUDE = 4  # per-pixel noise is an integer in [-4, 4] on every channel


@dataclasses.dataclass(frozen=True)
class SceneObject:
    """One moving shape. ``start`` and ``velocity`` are (x, y) of its centre in pixels."""

    category_id: int
    colour: tuple[int, int, int]  # the RGB it is painted with
    size: float  # bounding extent in pixels
    start: tuple[float, float]
    velocity: tuple[float, float]  # pixels per frame

    @property
    def shape(self) -> str:
        return SHAPES[(self.category_id - 1) % len(SHAPES)]


@dataclasses.dataclass(frozen=True)
class Scene:
    """A whole video: objects in depth order (later covers earlier) and the background's seed."""

    objects: tuple[SceneObject, ...]
    height: int
    width: int
    num_frames: int
    background_seed: int


def _star(points: int, inner: float) -> np.ndarray:
    angles = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


# Polygons in unit coordinates (x right, y down), the shape's bounding extent spanning [-1, 1].
_POLYGONS = {
    "triangle": np.array([[0.0, -1.0], [1.0, 0.8], [-1.0, 0.8]]),
    "hexagon": np.stack([np.cos(np.arange(6) * np.pi / 3), np.sin(np.arange(6) * np.pi / 3)], 1),
    "star": _star(5, 0.45),
}


def _inside_polygon(u: np.ndarray, v: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule for points (u, v) against a closed polygon (K, 2)."""
    inside = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        crosses = (y0 > v) != (y1 > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x0 + (v - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (u < x_at)
    return inside


def _unit_shape(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= 0.55**2)
    if shape == "square":
        return (np.abs(u) <= 0.85) & (np.abs(v) <= 0.85)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.33) & (av <= 1.0)) | ((av <= 0.33) & (au <= 1.0))
    if shape in _POLYGONS:
        return _inside_polygon(u, v, _POLYGONS[shape])
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def shape_mask(
    shape: str, centre: tuple[float, float], size: float, height: int, width: int
) -> np.ndarray:
    """Bool ``(height, width)`` mask of ``shape`` centred at ``centre`` (x, y), tested at pixel
    centres (pixel ``(i, j)`` has centre ``(j + 0.5, i + 0.5)``)."""
    half = size / 2.0
    cx, cy = centre
    x0, x1 = max(0, int(np.floor(cx - half))), min(width, int(np.ceil(cx + half)) + 1)
    y0, y1 = max(0, int(np.floor(cy - half))), min(height, int(np.ceil(cy + half)) + 1)
    out = np.zeros((height, width), dtype=bool)
    if x0 >= x1 or y0 >= y1:
        return out
    u = (np.arange(x0, x1) + 0.5 - cx)[None, :] / half
    v = (np.arange(y0, y1) + 0.5 - cy)[:, None] / half
    out[y0:y1, x0:x1] = _unit_shape(shape, u, v)
    return out


def _bounce(p0: float, vel: float, t: int, lo: float, hi: float) -> float:
    """Position at frame ``t`` of a point moving at ``vel`` and reflecting off ``lo``/``hi``."""
    span = hi - lo
    if span <= 0:
        return lo
    s = (p0 - lo + vel * t) % (2.0 * span)
    return lo + (s if s <= span else 2.0 * span - s)


def object_centre(obj: SceneObject, t: int, height: int, width: int) -> tuple[float, float]:
    """Centre (x, y) of ``obj`` at frame ``t``; the shape's box stays inside the frame."""
    half = obj.size / 2.0
    x = _bounce(obj.start[0], obj.velocity[0], t, half, width - half)
    y = _bounce(obj.start[1], obj.velocity[1], t, half, height - half)
    return x, y


def full_masks(scene: Scene) -> np.ndarray:
    """Bool ``(N, T, H, W)``: each object's whole shape, ignoring the others."""
    h, w = scene.height, scene.width
    return np.array(
        [
            [
                shape_mask(o.shape, object_centre(o, t, h, w), o.size, h, w)
                for t in range(scene.num_frames)
            ]
            for o in scene.objects
        ],
        dtype=bool,
    ).reshape(len(scene.objects), scene.num_frames, h, w)


def occlude(full: np.ndarray) -> np.ndarray:
    """Visible masks from whole masks ``(N, T, H, W)`` in depth order (later covers earlier)."""
    visible = full.copy()
    covered = np.zeros(full.shape[1:], dtype=bool)
    for i in range(full.shape[0] - 1, -1, -1):  # top first
        visible[i] &= ~covered
        covered |= full[i]
    return visible


def visible_masks(scene: Scene) -> np.ndarray:
    """Bool ``(N, T, H, W)``: the pixels of each object not covered by objects above it."""
    return occlude(full_masks(scene))


def _background(seed: int, height: int, width: int) -> np.ndarray:
    """Smooth grey blobs (levels 50..120) with a faint tint: ``(H, W, 3)`` float64."""
    rng = np.random.default_rng([seed, 1])
    grid = rng.uniform(50.0, 120.0, size=(5, 5))
    ys = np.linspace(0, 4, height)
    xs = np.linspace(0, 4, width)
    y0 = np.minimum(ys.astype(int), 3)
    x0 = np.minimum(xs.astype(int), 3)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    g = grid[y0][:, x0] * (1 - fy) * (1 - fx) + grid[y0 + 1][:, x0] * fy * (1 - fx)
    g += grid[y0][:, x0 + 1] * (1 - fy) * fx + grid[y0 + 1][:, x0 + 1] * fy * fx
    tint = rng.uniform(-8.0, 8.0, size=3)
    return g[:, :, None] + tint[None, None, :]


def render_scene(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Frames uint8 ``(T, H, W, 3)`` and visible masks bool ``(N, T, H, W)`` of ``scene``.

    Inside an object's visible mask every channel is within :data:`NOISE_AMPLITUDE` of its
    ``colour``; elsewhere the background is a grey of saturation below about 30.
    """
    masks = visible_masks(scene)
    base = _background(scene.background_seed, scene.height, scene.width)
    noise_rng = np.random.default_rng([scene.background_seed, 2])
    frames = np.empty((scene.num_frames, scene.height, scene.width, 3), dtype=np.uint8)
    for t in range(scene.num_frames):
        img = base.copy()
        for i, obj in enumerate(scene.objects):
            img[masks[i, t]] = obj.colour
        noise = noise_rng.integers(-NOISE_AMPLITUDE, NOISE_AMPLITUDE + 1, size=img.shape)
        frames[t] = np.clip(np.rint(img) + noise, 0, 255).astype(np.uint8)
    return frames, masks


def sample_scene(
    rng: np.random.Generator, category_ids: Sequence[int], spec: SyntheticSpec
) -> Scene:
    """A random :class:`Scene` with one object per id (depth order shuffled), resampled up to 30
    times until every object shows at least ``min_visible_fraction`` of its area in every frame."""
    n = len(category_ids)
    background_seed = int(rng.integers(0, 2**31 - 1))
    best, best_score = None, -1.0
    for _ in range(30):
        sizes = rng.choice(spec.size_grid(), size=n, replace=False).astype(float)
        order = rng.permutation(n)
        objects = []
        for k in order:
            cid = int(category_ids[k])
            base_rgb = np.array(COLOURS[(cid - 1) // len(SHAPES)][1], dtype=float)
            colour = np.rint(base_rgb * rng.uniform(0.88, 1.0)).astype(int)
            half = sizes[k] / 2.0
            start = (
                float(rng.uniform(half, spec.width - half)),
                float(rng.uniform(half, spec.height - half)),
            )
            speed = rng.uniform(-spec.max_speed, spec.max_speed, size=2)
            objects.append(
                SceneObject(
                    cid, tuple(int(c) for c in colour), float(sizes[k]), start, tuple(speed)
                )
            )
        scene = Scene(tuple(objects), spec.height, spec.width, spec.num_frames, background_seed)
        if spec.min_visible_fraction <= 0:
            return scene
        full = full_masks(scene)
        masks = occlude(full)
        frac = masks.sum(axis=(2, 3)) / np.maximum(full.sum(axis=(2, 3)), 1)
        score = float(frac.min()) if frac.size else 1.0
        if score >= spec.min_visible_fraction:
            return scene
        if score > best_score:
            best, best_score = scene, score
    return best


def video_scene(spec: SyntheticSpec, seed: int, split: str, index: int) -> Scene:
    """The scene of video ``index`` (0-based) of ``split``; independent of every other video."""
    check_split(split)
    cats = assign_categories(spec, seed, split)
    if not 0 <= index < len(cats):
        raise ValueError(f"{split} has {len(cats)} videos; no video index {index}")
    rng = np.random.default_rng([seed, SPLITS.index(split), 1, index])
    return sample_scene(rng, cats[index], spec)
