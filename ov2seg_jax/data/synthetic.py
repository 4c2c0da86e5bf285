"""The built-in synthetic open-vocabulary video dataset: coloured shapes that move and occlude.

Every category is a composition ``"<colour> <shape>"`` of 8 colours and 8 shapes (64 categories,
ids ``1 + 8 * colour + shape``). Sixteen pairs are held out as *novel*: colour ``c`` is novel with
shapes ``(c + 2) % 8`` and ``(c + 5) % 8`` (a Latin-square choice, so every colour and every shape
has exactly two novel pairs and also appears in six base pairs). Training videos show only base
categories; validation videos show both, with each novel category several times, so a model
trained with a compositional text classifier (:mod:`ov2seg_jax.vocabulary.compositional`) can be
scored on combinations it never saw.

A video: ``num_frames`` frames of ``height x width`` with 1-4 filled shapes of distinct sizes on a
smooth, noisy, low-saturation background. Shapes move with constant velocity and bounce off the
borders (they always stay inside the frame); list order is depth order (later objects cover
earlier ones). An instance's mask is its *visible* pixels; a fully covered instance has a null
segmentation in that frame. Everything is a pure function of ``(spec, seed)``.

On disk (the LV-VIS layout, readable by the LV-VIS-format readers and the video evaluator)::

    <root>/train/JPEGImages/<video>/<frame>.jpg     <root>/train/train_instances.json
    <root>/val/JPEGImages/<video>/<frame>.jpg       <root>/val/val_instances.json
    <root>/categories.json   [{id, name, partition, colour, shape}]
    <root>/categories.txt    one name per line, in id order (a vocabulary file)
    <root>/text_classifier.npy   (64, text_dim) float32 compositional classifier, id order
    <root>/manifest.json     spec, seed and file list; written last (marks a complete build)

``partition`` follows LV-VIS's integer codes, which the evaluator reads (0/1 base, 2/3 novel):
base categories carry :data:`PARTITION_BASE` (0), novel ones :data:`PARTITION_NOVEL` (2).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Sequence

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ov2seg_jax.atomic_file import atomic_write
from ov2seg_jax.vocabulary.cache import save_array_atomic
from ov2seg_jax.vocabulary.compositional import ENCODER_VERSION, encode_names

COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (230, 30, 30)),
    ("green", (40, 190, 50)),
    ("blue", (40, 80, 240)),
    ("yellow", (240, 220, 30)),
    ("magenta", (225, 40, 225)),
    ("cyan", (40, 220, 230)),
    ("orange", (255, 140, 20)),
    ("white", (245, 245, 245)),
)
SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "hexagon",
    "diamond",
    "cross",
    "ring",
)
NOVEL_SHAPE_OFFSETS = (2, 5)  # colour c is novel with shapes (c + 2) % 8 and (c + 5) % 8
PARTITION_BASE = 0
PARTITION_NOVEL = 2
FORMAT_VERSION = 1
NOISE_AMPLITUDE = 4  # per-pixel noise is an integer in [-4, 4] on every channel
SPLITS = ("train", "val")
_GENERATOR = "ov2seg_jax.data.synthetic"


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """Sizes of the dataset. Object sizes are bounding extents in pixels."""

    num_train_videos: int = 300
    num_val_videos: int = 48
    num_frames: int = 8
    height: int = 128
    width: int = 128
    min_objects: int = 1
    max_objects: int = 4
    min_size: int = 18
    max_size: int = 40
    size_step: int = 4  # sizes within a video differ by at least this much
    max_speed: float = 4.0  # pixels per frame, per axis
    min_visible_fraction: float = 0.25  # resample a video (up to 30 times) below this
    val_novel_fraction: float = 0.5  # share of validation instances with a novel category
    jpeg_quality: int = 95
    text_dim: int = 512

    def __post_init__(self) -> None:
        ints = ("num_train_videos", "num_val_videos", "num_frames", "height", "width")
        ints += ("min_objects", "max_objects", "min_size", "max_size", "size_step", "jpeg_quality")
        for name in (*ints, "text_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"SyntheticSpec.{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))  # plain ints: the manifest is JSON
        for name in ("max_speed", "min_visible_fraction", "val_novel_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ValueError(f"SyntheticSpec.{name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("num_frames", "height", "width", "min_objects", "size_step", "text_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"SyntheticSpec.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_train_videos", "num_val_videos"):
            if getattr(self, name) < 0:
                raise ValueError(f"SyntheticSpec.{name} must be >= 0, got {getattr(self, name)}")
        if self.max_objects < self.min_objects:
            raise ValueError(
                f"SyntheticSpec.max_objects ({self.max_objects}) < min_objects ({self.min_objects})"
            )
        if not 4 <= self.min_size <= self.max_size <= min(self.height, self.width):
            raise ValueError(
                f"SyntheticSpec sizes need 4 <= min_size <= max_size <= min(height, width); got "
                f"min_size={self.min_size}, max_size={self.max_size}, "
                f"height={self.height}, width={self.width}"
            )
        if len(self.size_grid()) < self.max_objects:
            raise ValueError(
                f"SyntheticSpec: sizes {self.min_size}..{self.max_size} in steps of "
                f"{self.size_step} give {len(self.size_grid())} distinct sizes, fewer than "
                f"max_objects={self.max_objects}"
            )
        if not self.max_speed >= 0:
            raise ValueError(f"SyntheticSpec.max_speed must be >= 0, got {self.max_speed}")
        for name in ("min_visible_fraction", "val_novel_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"SyntheticSpec.{name} must be in [0, 1], got {getattr(self, name)}"
                )
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(
                f"SyntheticSpec.jpeg_quality must be in [1, 100], got {self.jpeg_quality}"
            )

    def size_grid(self) -> np.ndarray:
        """The object sizes a video draws from (without replacement)."""
        return np.arange(self.min_size, self.max_size + 1, self.size_step)

    def num_videos(self, split: str) -> int:
        _check_split(split)
        return self.num_train_videos if split == "train" else self.num_val_videos


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


# ---------------------------------------------------------------------------- categories


def category_id(colour: int, shape: int) -> int:
    """Dataset id (1-based) of the pair ``(colour index, shape index)``."""
    return 1 + colour * len(SHAPES) + shape


def novel_pairs() -> tuple[tuple[str, str], ...]:
    """The 16 held-out ``(colour, shape)`` pairs, in category id order."""
    pairs = []
    for c, (colour, _) in enumerate(COLOURS):
        for s in sorted((c + k) % len(SHAPES) for k in NOVEL_SHAPE_OFFSETS):
            pairs.append((colour, SHAPES[s]))
    return tuple(pairs)


def categories() -> list[dict]:
    """All 64 categories in id order: ``{id, name, partition, colour, shape}``."""
    novel = set(novel_pairs())
    out = []
    for c, (colour, _) in enumerate(COLOURS):
        for s, shape in enumerate(SHAPES):
            part = PARTITION_NOVEL if (colour, shape) in novel else PARTITION_BASE
            out.append(
                {
                    "id": category_id(c, s),
                    "name": f"{colour} {shape}",
                    "partition": part,
                    "colour": colour,
                    "shape": shape,
                }
            )
    return out


def category_names() -> list[str]:
    """The 64 names ``"<colour> <shape>"`` in id order (row order of the text classifier)."""
    return [c["name"] for c in categories()]


def split_category_ids(partition: int) -> list[int]:
    """Ids of the base (:data:`PARTITION_BASE`) or novel (:data:`PARTITION_NOVEL`) categories."""
    return [c["id"] for c in categories() if c["partition"] == partition]


def _balanced_draw(rng: np.random.Generator, ids: Sequence[int], count: int) -> list[int]:
    """``count`` ids cycling through fresh random permutations of ``ids`` (balanced counts)."""
    out: list[int] = []
    while len(out) < count:
        out.extend(int(i) for i in rng.permutation(np.asarray(ids)))
    return out[:count]


def assign_categories(spec: SyntheticSpec, seed: int, split: str) -> list[list[int]]:
    """Category ids of the objects of every video of ``split`` (depth order is drawn later).

    Train draws only base categories; val draws a ``val_novel_fraction`` share of novel ones.
    Both cycle through shuffled category lists, so counts per category differ by at most one
    within each group.
    """
    _check_split(split)
    rng = np.random.default_rng([seed, SPLITS.index(split), 0])
    counts = rng.integers(spec.min_objects, spec.max_objects + 1, size=spec.num_videos(split))
    total = int(counts.sum())
    base = split_category_ids(PARTITION_BASE)
    if split == "train":
        slots = _balanced_draw(rng, base, total)
    else:
        num_novel = int(round(total * spec.val_novel_fraction))
        novel = split_category_ids(PARTITION_NOVEL)
        slots = _balanced_draw(rng, novel, num_novel) + _balanced_draw(rng, base, total - num_novel)
        slots = [slots[i] for i in rng.permutation(total)]
    out, start = [], 0
    for n in counts:
        out.append(slots[start : start + int(n)])
        start += int(n)
    return out


# ---------------------------------------------------------------------------- scenes


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


# ---------------------------------------------------------------------------- annotations


def track_annotation(masks: np.ndarray) -> dict:
    """LV-VIS fields of one instance from its visible masks ``(T, H, W)`` bool.

    ``segmentations``: compressed RLE per frame (``counts`` as str), None where the instance has
    no visible pixel; ``areas``: pixel counts (None where absent); ``bboxes``: ``[x, y, w, h]``
    of the visible pixels (None where absent).
    """
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    segs, areas, boxes = [], [], []
    for t, rle in enumerate(rles):
        ys, xs = np.nonzero(masks[t])
        if ys.size == 0:
            segs.append(None)
            areas.append(None)
            boxes.append(None)
            continue
        segs.append({"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()})
        areas.append(int(ys.size))
        x0, y0 = int(xs.min()), int(ys.min())
        boxes.append([float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)])
    return {"segmentations": segs, "areas": areas, "bboxes": boxes}


def video_scene(spec: SyntheticSpec, seed: int, split: str, index: int) -> Scene:
    """The scene of video ``index`` (0-based) of ``split``; independent of every other video."""
    _check_split(split)
    cats = assign_categories(spec, seed, split)
    if not 0 <= index < len(cats):
        raise ValueError(f"{split} has {len(cats)} videos; no video index {index}")
    rng = np.random.default_rng([seed, SPLITS.index(split), 1, index])
    return sample_scene(rng, cats[index], spec)


def _json_categories() -> list[dict]:
    return [{"id": c["id"], "name": c["name"], "partition": c["partition"]} for c in categories()]


def _write_json_atomic(path: str, data: object) -> None:
    with atomic_write(path) as f:
        json.dump(data, f, separators=(",", ":"))


def write_split(out_root: str, split: str, spec: SyntheticSpec, seed: int) -> dict:
    """Render and write one split under ``out_root``; returns counts for the summary."""
    split_dir = os.path.join(out_root, split)
    image_root = os.path.join(split_dir, "JPEGImages")
    novel_ids = set(split_category_ids(PARTITION_NOVEL))
    videos, annotations = [], []
    null_frames = 0
    for index in range(spec.num_videos(split)):
        scene = video_scene(spec, seed, split, index)
        frames, masks = render_scene(scene)
        name = f"{index:05d}"
        os.makedirs(os.path.join(image_root, name), exist_ok=True)
        file_names = []
        for t, frame in enumerate(frames):
            rel = f"{name}/{t:05d}.jpg"
            Image.fromarray(frame).save(
                os.path.join(image_root, rel), quality=spec.jpeg_quality, subsampling=0
            )
            file_names.append(rel)
        video_id = index + 1
        videos.append(
            {
                "id": video_id,
                "file_names": file_names,
                "height": spec.height,
                "width": spec.width,
                "length": spec.num_frames,
            }
        )
        for obj, obj_masks in zip(scene.objects, masks, strict=True):
            fields = track_annotation(obj_masks)
            null_frames += sum(s is None for s in fields["segmentations"])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "video_id": video_id,
                    "category_id": obj.category_id,
                    "iscrowd": 0,
                    "height": spec.height,
                    "width": spec.width,
                    "length": spec.num_frames,
                    **fields,
                }
            )
    data = {
        "info": {
            "description": f"ov2seg-jax synthetic shapes ({split})",
            "version": FORMAT_VERSION,
            "seed": seed,
        },
        "licenses": [],
        "videos": videos,
        "categories": _json_categories(),
        "annotations": annotations,
    }
    os.makedirs(split_dir, exist_ok=True)
    _write_json_atomic(os.path.join(split_dir, f"{split}_instances.json"), data)
    per_cat = np.bincount([a["category_id"] for a in annotations], minlength=len(categories()) + 1)
    return {
        "videos": len(videos),
        "frames": len(videos) * spec.num_frames,
        "instances": len(annotations),
        "novel_instances": sum(a["category_id"] in novel_ids for a in annotations),
        "null_frames": null_frames,
        "min_instances_per_novel": int(min(per_cat[i] for i in novel_ids)),
        "min_instances_per_base": int(min(per_cat[i] for i in split_category_ids(PARTITION_BASE))),
    }


# ---------------------------------------------------------------------------- the dataset


def dataset_paths(root: str | os.PathLike[str]) -> dict[str, str]:
    """Where every part of a synthetic dataset rooted at ``root`` lives."""
    root = os.path.abspath(os.fspath(root))
    paths = {"root": root}
    for split in SPLITS:
        paths[f"{split}_images"] = os.path.join(root, split, "JPEGImages")
        paths[f"{split}_json"] = os.path.join(root, split, f"{split}_instances.json")
    paths["categories_json"] = os.path.join(root, "categories.json")
    paths["categories_txt"] = os.path.join(root, "categories.txt")
    paths["classifier"] = os.path.join(root, "text_classifier.npy")
    paths["manifest"] = os.path.join(root, "manifest.json")
    return paths


def _manifest(spec: SyntheticSpec, seed: int, summary: dict) -> dict:
    return {
        "generator": _GENERATOR,
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "spec": dataclasses.asdict(spec),
        "text_encoder": ENCODER_VERSION,
        "summary": summary,
    }


def read_manifest(root: str | os.PathLike[str]) -> dict | None:
    """The manifest of a complete synthetic dataset at ``root``, or None if there is none."""
    path = dataset_paths(root)["manifest"]
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("generator") == _GENERATOR else None


def is_complete(root: str | os.PathLike[str], spec: SyntheticSpec, seed: int) -> bool:
    """True if ``root`` holds a finished build of exactly ``(spec, seed)``."""
    manifest = read_manifest(root)
    if manifest is None:
        return False
    same = (
        manifest.get("format_version") == FORMAT_VERSION
        and manifest.get("seed") == seed
        and manifest.get("spec") == dataclasses.asdict(spec)
        and manifest.get("text_encoder") == ENCODER_VERSION
    )
    return same and all(os.path.exists(p) for p in dataset_paths(root).values())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _remove_stale_builds(parent: str, prefixes: tuple[str, ...]) -> None:
    """Delete leftovers of interrupted builds (their process is gone)."""
    for entry in os.listdir(parent):
        if entry.startswith(prefixes):
            pid = entry.rsplit("-", 1)[-1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def build_synthetic_dataset(
    root: str | os.PathLike[str], spec: SyntheticSpec | None = None, seed: int = 0
) -> dict[str, str]:
    """Build the synthetic dataset at ``root`` (see the module docstring); returns its paths.

    Idempotent: a complete build of the same ``(spec, seed)`` is left as it is. Otherwise the
    dataset is written into a hidden sibling folder and moved into place at the end, so an
    interrupted build never looks complete and is redone by the next call. An existing ``root``
    is replaced only if it is empty or an earlier synthetic build; any other folder is an error.

    Returns:
        ``{root, train_images, train_json, val_images, val_json, categories_json,
        categories_txt, classifier, manifest}`` as absolute paths.
    """
    spec = SyntheticSpec() if spec is None else spec
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    paths = dataset_paths(root)
    root = paths["root"]
    if is_complete(root, spec, seed):
        return paths
    if os.path.exists(root):
        if not os.path.isdir(root):
            raise ValueError(f"synthetic dataset root {root} exists and is not a folder")
        if os.listdir(root) and read_manifest(root) is None:
            raise ValueError(
                f"{root} is not empty and holds no synthetic dataset (no {paths['manifest']} "
                "written by this generator); refusing to overwrite it. Pick a new or empty folder."
            )
    parent, base = os.path.split(root)
    os.makedirs(parent, exist_ok=True)
    _remove_stale_builds(parent, (f".{base}.building-", f".{base}.old-"))
    work = os.path.join(parent, f".{base}.building-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    try:
        summary = {split: write_split(work, split, spec, seed) for split in SPLITS}
        tmp_paths = dataset_paths(work)
        with open(tmp_paths["categories_json"], "w", encoding="utf-8") as f:
            json.dump(categories(), f, indent=1)
        with open(tmp_paths["categories_txt"], "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in category_names()))
        save_array_atomic(tmp_paths["classifier"], encode_names(category_names(), spec.text_dim))
        os.chmod(tmp_paths["classifier"], 0o644)  # the atomic writer's temp file is private
        _write_json_atomic(tmp_paths["manifest"], _manifest(spec, seed, summary))
        if os.path.exists(root):
            old = os.path.join(parent, f".{base}.old-{os.getpid()}")
            os.replace(root, old)
            os.replace(work, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(work, root)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return paths
