"""Reading video frames from a folder and resizing them as the original's test mapper does."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from ov2seg_jax.data.frame_files import open_frame

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def list_frames(folder: str) -> list[str]:
    """Image files of ``folder`` sorted by name; errors if there are none."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"frame folder not found: {folder}")
    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise ValueError(f"frame folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return [os.path.join(folder, n) for n in names]


def read_image(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB; a clear error for a file that is not a readable image."""
    try:
        with Image.open(open_frame(path)) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from e


def resized_shape(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """detectron2's ``ResizeShortestEdge`` output size: short side to ``min_size``, long side
    at most ``max_size``, rounded half up."""
    scale = min_size / min(height, width)
    new_h, new_w = (min_size, scale * width) if height < width else (scale * height, min_size)
    if max(new_h, new_w) > max_size:
        s = max_size / max(new_h, new_w)
        new_h, new_w = new_h * s, new_w * s
    return int(new_h + 0.5), int(new_w + 0.5)


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """PIL bilinear resize of a uint8 frame to ``size`` = (H, W), as detectron2 does."""
    if frame.shape[:2] == tuple(size):
        return frame
    return np.asarray(Image.fromarray(frame).resize((size[1], size[0]), Image.BILINEAR))


def read_frames(
    paths, min_size: int | None = None, max_size: int = 1333
) -> tuple[np.ndarray, tuple[int, int]]:
    """Frames at ``paths`` as (T, H', W', 3) uint8, resized so the short side is ``min_size``
    (None: as stored), plus the original (H, W). All frames must have one size."""
    paths = list(paths)
    if not paths:
        raise ValueError("no frames to read")
    first = read_image(paths[0])
    original = first.shape[:2]
    size = resized_shape(*original, min_size, max_size) if min_size else original
    frames = []
    for i, p in enumerate(paths):
        img = first if i == 0 else read_image(p)
        if img.shape[:2] != original:
            raise ValueError(
                f"{p} is {img.shape[1]}x{img.shape[0]}, but the first frame ({paths[0]}) is "
                f"{original[1]}x{original[0]}: all frames must match"
            )
        frames.append(resize_frame(img, size))
    return np.stack(frames), original


def read_frame_folder(
    folder: str, min_size: int | None = None, max_size: int = 1333
) -> tuple[np.ndarray, tuple[int, int], list[str]]:
    """All frames of ``folder`` (sorted by name), see :func:`read_frames`, plus the file names."""
    paths = list_frames(folder)
    frames, original = read_frames(paths, min_size, max_size)
    return frames, original, [os.path.basename(p) for p in paths]
