"""Tiny fake copies of the real dataset layouts, for tests and the input-pipeline benchmark.

Each writer puts a few images/videos where :mod:`ov2seg_jax.data.registry` looks for the named
dataset under ``root``. Frames are a flat grey background (``BACKGROUND``) with axis-aligned
rectangles, each instance filled with its own colour (``instance_colour``), so a test can check
that a transformed mask selects exactly its instance's pixels. Segmentations alternate between
polygons and compressed RLE to exercise both decoders.
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ov2seg_jax.data.registry import resolve

BACKGROUND = (90, 90, 90)
_PALETTE = (
    (230, 30, 30),
    (30, 200, 40),
    (40, 70, 240),
    (240, 220, 30),
    (220, 40, 220),
    (30, 220, 220),
    (250, 150, 20),
    (250, 250, 250),
)


def instance_colour(j: int) -> tuple[int, int, int]:
    """The fill colour of the ``j``-th instance of a frame (cycles through 8 colours)."""
    return _PALETTE[j % len(_PALETTE)]


def _boxes(rng: np.random.Generator, n: int, height: int, width: int) -> list[tuple[int, ...]]:
    """``n`` non-overlapping boxes (x0, y0, x1, y1) in a row of vertical bands."""
    band = width // n
    out = []
    for j in range(n):
        bw = int(rng.integers(max(2, band // 3), max(3, band - 2)))
        bh = int(rng.integers(max(2, height // 4), max(3, height - 2)))
        x0 = j * band + int(rng.integers(0, max(1, band - bw)))
        y0 = int(rng.integers(0, max(1, height - bh)))
        out.append((x0, y0, x0 + bw, y0 + bh))
    return out


def _segmentation(box: tuple[int, ...], height: int, width: int, as_rle: bool):
    x0, y0, x1, y1 = box
    if as_rle:
        m = np.zeros((height, width), np.uint8)
        m[y0:y1, x0:x1] = 1
        rle = mask_utils.encode(np.asfortranarray(m))
        return {"size": [height, width], "counts": rle["counts"].decode("ascii")}
    return [
        [float(x0), float(y0), float(x1), float(y0), float(x1), float(y1), float(x0), float(y1)]
    ]


def paint(boxes: list[tuple[int, ...]], height: int, width: int) -> np.ndarray:
    img = np.empty((height, width, 3), np.uint8)
    img[:] = BACKGROUND
    for j, (x0, y0, x1, y1) in enumerate(boxes):
        img[y0:y1, x0:x1] = instance_colour(j)
    return img


def _save(img: np.ndarray, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(img).save(path, quality=100, subsampling=0)


def _categories(num: int, lvis: bool) -> list[dict]:
    cats = []
    for i in range(num):
        c = {"id": 2 * i + 1, "name": f"thing_{i}"}  # non-contiguous ids on purpose
        if lvis:
            c.update(frequency="rfc"[i % 3], image_count=10 * (i + 1))
        else:
            c["partition"] = 2 if i % 4 == 3 else 0
        cats.append(c)
    return cats


def write_image_layout(
    root: str,
    name: str = "lvis_v1_train",
    *,
    num_images: int = 4,
    num_categories: int = 6,
    height: int = 48,
    width: int = 64,
    seed: int = 0,
) -> dict:
    """An LVIS-format split (``coco/{train,val}2017/*.jpg`` + ``lvis/<name>.json``); returns the json.

    Image ``i`` has ``1 + i % 3`` instances; instance ``j`` is painted in colour ``j``.
    """
    entry = resolve(name, root)
    rng = np.random.default_rng(seed)
    cats = _categories(num_categories, lvis=True)
    folder = "val2017" if "val" in name else "train2017"  # the COCO folder LVIS points into
    images, annotations = [], []
    for i in range(num_images):
        h, w = height + 8 * (i % 2), width
        n = 1 + i % 3
        boxes = _boxes(rng, n, h, w)
        rel = f"{folder}/{i + 1:012d}.jpg"
        _save(paint(boxes, h, w), os.path.join(entry.image_root, rel))
        images.append(
            {
                "id": i + 1,
                "height": h,
                "width": w,
                "coco_url": f"http://images.cocodataset.org/{rel}",
            }
        )
        for j, box in enumerate(boxes):
            x0, y0, x1, y1 = box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": cats[(i + j) % num_categories]["id"],
                    "segmentation": _segmentation(box, h, w, as_rle=bool(j % 2)),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    data = {"images": images, "annotations": annotations, "categories": cats}
    os.makedirs(os.path.dirname(entry.json), exist_ok=True)
    with open(entry.json, "w") as f:
        json.dump(data, f)
    return data


def write_video_layout(
    root: str,
    name: str = "lvvis_train",
    *,
    split: str = "train",
    num_videos: int = 3,
    num_frames: int = 4,
    num_categories: int = 8,
    height: int = 48,
    width: int = 64,
    seed: int = 0,
) -> dict:
    """A YouTube-VIS-format split of a registered video dataset (or ``lvvis_format`` + split).

    Instance ``j`` of a video keeps colour ``j`` in every frame; the last instance of each video
    is absent (null segmentation) from frame 1, to exercise per-frame validity.
    """
    entry = resolve(name, root, split)
    rng = np.random.default_rng(seed)
    cats = _categories(num_categories, lvis=False)
    videos, annotations = [], []
    for v in range(num_videos):
        n = 1 + v % 3
        names = [f"video{v:03d}/{t:05d}.jpg" for t in range(num_frames)]
        per_frame = []
        for t in range(num_frames):
            boxes = _boxes(rng, n, height, width)
            if n > 1 and t == 1:
                shown = boxes[:-1]
            else:
                shown = boxes
            per_frame.append((boxes, len(shown)))
            _save(paint(shown, height, width), os.path.join(entry.image_root, names[t]))
        videos.append(
            {
                "id": v + 1,
                "file_names": names,
                "height": height,
                "width": width,
                "length": num_frames,
            }
        )
        for j in range(n):
            segs = [
                _segmentation(boxes[j], height, width, as_rle=bool((j + t) % 2))
                if j < count
                else None
                for t, (boxes, count) in enumerate(per_frame)
            ]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "video_id": v + 1,
                    "category_id": cats[(v + j) % num_categories]["id"],
                    "segmentations": segs,
                    "areas": [
                        (boxes[j][2] - boxes[j][0]) * (boxes[j][3] - boxes[j][1])
                        if j < count
                        else None
                        for boxes, count in per_frame
                    ],
                    "iscrowd": 0,
                }
            )
    data = {"videos": videos, "annotations": annotations, "categories": cats}
    os.makedirs(os.path.dirname(entry.json), exist_ok=True)
    with open(entry.json, "w") as f:
        json.dump(data, f)
    return data
