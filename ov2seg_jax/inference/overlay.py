"""Overlay videos: predicted masks blended over the frames with track id, class name and score.

:func:`render_frame` draws one frame (a pure function of its inputs); :func:`write_overlay` streams
a whole video through it into an mp4 (H.264 through imageio-ffmpeg) or a gif, one frame at a time.
The instance's index in the prediction (descending score) is its track id, the same id the table
of :func:`~ov2seg_jax.inference.results.format_tracks` prints; each id has a fixed colour.
"""

from __future__ import annotations

import colorsys
import os
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

OVERLAY_FORMATS = ("mp4", "gif")
DEFAULT_ALPHA = 0.5
# Frames whose short side is below this are enlarged by a whole factor before drawing, so the
# captions stay readable on small videos (the built-in synthetic data is 128x128).
MIN_SIDE = 384
_GIF_FILTER = [
    "-filter_complex",
    "split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse=dither=none",
]


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A bright RGB colour for ``track_id``; neighbouring ids get well separated hues."""
    hue = (track_id * 0.618033988749895) % 1.0  # golden-ratio steps around the colour wheel
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def place_labels(
    boxes: Sequence[tuple[int, int, int, int]],
    sizes: Sequence[tuple[int, int]],
    frame_size: tuple[int, int],
) -> list[tuple[int, int]]:
    """Top-left corners for label boxes, inside the frame and apart from each other.

    Args:
        boxes: (x0, y0, x1, y1) inclusive pixel box of each instance's mask, in priority order
            (the first label gets the best place).
        sizes: (width, height) in pixels of each label box.
        frame_size: (height, width).

    Each label prefers its mask's top-left corner; failing that (another label is there), its
    box's right-aligned corner, then rows below and above, one label height at a time. Every
    candidate is shifted into the frame first, so a label is never cut by the border (unless it
    is wider or taller than the frame). Where every candidate overlaps, the first one is kept.
    """
    height, width = frame_size
    placed: list[tuple[int, int, int, int]] = []
    corners = []
    for (x0, y0, x1, _), (w, h) in zip(boxes, sizes, strict=True):
        rows = [y0]
        for k in range(1, 9):
            rows += [y0 + k * h, y0 - k * h]
        candidates = []
        for y in rows:
            for x in (x0, x1 - w + 1):
                c = (max(0, min(x, width - w)), max(0, min(y, height - h)))
                if c not in candidates:
                    candidates.append(c)
        free = (
            c
            for c in candidates
            if all(
                c[0] + w <= px or px + pw <= c[0] or c[1] + h <= py or py + ph <= c[1]
                for px, py, pw, ph in placed
            )
        )
        x, y = next(free, candidates[0])
        placed.append((x, y, w, h))
        corners.append((x, y))
    return corners


def render_frame(
    frame: np.ndarray,
    masks: np.ndarray,
    track_ids: Sequence[int],
    captions: Sequence[str],
    alpha: float = DEFAULT_ALPHA,
) -> np.ndarray:
    """Blend ``masks`` over ``frame`` and label each with its caption (see :func:`place_labels`).

    Args:
        frame: (H, W, 3) uint8 RGB.
        masks: (N, H, W) bool, one per drawn instance (empty masks are skipped), least important
            first: later masks and labels are drawn on top, and later labels are placed first.
        track_ids: (N,) ids choosing the colours.
        captions: (N,) texts, e.g. ``"3 cat 0.87"``.
        alpha: mask opacity in [0, 1].

    Returns:
        (H, W, 3) uint8 RGB; ``frame`` is not modified.
    """
    frame = np.asarray(frame, np.uint8)
    masks = np.asarray(masks, bool)
    if masks.ndim != 3 or masks.shape[1:] != frame.shape[:2]:
        raise ValueError(f"masks {masks.shape} do not fit the frame {frame.shape}")
    out = frame.astype(np.float32)
    for mask, tid in zip(masks, track_ids, strict=True):
        if mask.any():
            colour = np.asarray(track_colour(int(tid)), np.float32)
            out[mask] = (1.0 - alpha) * out[mask] + alpha * colour
    image = Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    drawn = [i for i, mask in enumerate(masks) if mask.any()][::-1]  # most important first
    boxes, sizes, ink = [], [], []
    for i in drawn:
        ys, xs = np.nonzero(masks[i])
        boxes.append((int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())))
        left, top, right, bottom = draw.textbbox((0, 0), captions[i], font=font)
        ink.append((left, top))
        sizes.append((right - left + 2, bottom - top + 2))  # a 1-pixel margin around the text
    corners = place_labels(boxes, sizes, frame.shape[:2])
    for k in reversed(range(len(drawn))):  # the most important label is drawn last, on top
        (x, y), (w, h), (left, top) = corners[k], sizes[k], ink[k]
        draw.rectangle((x, y, x + w - 1, y + h - 1), fill=track_colour(int(track_ids[drawn[k]])))
        draw.text((x + 1 - left, y + 1 - top), captions[drawn[k]], fill=(0, 0, 0), font=font)
    return np.asarray(image)


def _frame_masks_of(prediction, t: int) -> np.ndarray:
    if hasattr(prediction, "frame_masks"):
        return prediction.frame_masks(t)
    return np.asarray(prediction.masks[:, t])


def _fit(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of (N, h, w) masks to ``size`` when they differ."""
    if masks.shape[1:] == tuple(size):
        return masks
    return (
        np.stack(
            [
                np.asarray(
                    Image.fromarray(m.astype(np.uint8)).resize(size[::-1], Image.NEAREST), bool
                )
                for m in masks
            ]
        )
        if len(masks)
        else np.zeros((0, *size), bool)
    )


def upscale_factor(height: int, width: int, min_side: int = MIN_SIDE) -> int:
    """The whole factor that brings the short side of a frame to at least ``min_side``."""
    return max(1, -(-min_side // max(1, min(height, width))))


def overlay_frames(
    frames: Iterable[np.ndarray],
    prediction,
    names: Sequence[str],
    score_threshold: float = 0.0,
    alpha: float = DEFAULT_ALPHA,
    min_side: int = MIN_SIDE,
):
    """Yield the rendered frames of a video, enlarged by :func:`upscale_factor` when small.

    ``prediction``: a :class:`~ov2seg_jax.inference.streaming.StreamedPrediction` or a
    :class:`~ov2seg_jax.inference.predictor.VideoPrediction` (``scores``, ``labels`` and per-frame
    masks); only instances scoring at least ``score_threshold`` are drawn. ``names[label]`` is the
    class name of a label.
    """
    scores = np.asarray(prediction.scores)
    # Lowest score first, so the most confident track's mask and caption end up on top.
    keep = np.flatnonzero(scores >= score_threshold)
    keep = keep[np.argsort(scores[keep], kind="stable")]
    ids = [int(i) for i in keep]
    captions = [f"{i} {names[int(prediction.labels[i])]} {float(scores[i]):.2f}" for i in ids]
    for t, frame in enumerate(frames):
        masks = _fit(_frame_masks_of(prediction, t)[keep], frame.shape[:2])
        k = upscale_factor(*frame.shape[:2], min_side)
        if k > 1:
            h, w = frame.shape[:2]
            frame = np.asarray(Image.fromarray(frame).resize((w * k, h * k), Image.BILINEAR))
            masks = masks.repeat(k, axis=1).repeat(k, axis=2)
        yield render_frame(frame, masks, ids, captions, alpha)


def write_overlay(
    frames: Iterable[np.ndarray],
    prediction,
    names: Sequence[str],
    path: str,
    fps: float = 10.0,
    score_threshold: float = 0.0,
    alpha: float = DEFAULT_ALPHA,
) -> str:
    """Render the video (see :func:`overlay_frames`) into ``path`` (``.mp4`` or ``.gif``).

    The file is written under a temporary name and renamed at the end, so an error leaves no
    partial video behind. Returns ``path``.
    """
    kind = os.path.splitext(path)[1].lower().lstrip(".")
    if kind not in OVERLAY_FORMATS:
        raise ValueError(f"overlay {path}: the format must be one of {OVERLAY_FORMATS}")
    if not fps > 0:
        raise ValueError(f"overlay fps must be positive, got {fps}")
    import imageio_ffmpeg

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    writer = None
    try:
        for image in overlay_frames(frames, prediction, names, score_threshold, alpha):
            if writer is None:
                h, w = image.shape[:2]
                size = (w + w % 2, h + h % 2)  # H.264 in yuv420p needs even sides
                codec = dict(codec="libx264", pix_fmt_out="yuv420p", quality=8)
                if kind == "gif":  # one palette made from the whole clip, no dithering
                    codec = dict(codec="gif", pix_fmt_out="pal8", output_params=_GIF_FILTER)
                writer = imageio_ffmpeg.write_frames(
                    tmp, size, fps=fps, macro_block_size=1, ffmpeg_log_level="error", **codec
                )
                with warnings.catch_warnings():  # JAX warns on any fork; ffmpeg is exec'd at once
                    warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
                    writer.send(None)
            if image.shape[:2] != (size[1], size[0]):
                image = np.pad(image, ((0, size[1] - h), (0, size[0] - w), (0, 0)))
            writer.send(np.ascontiguousarray(image))
        if writer is None:
            raise ValueError(f"overlay {path}: no frames to write")
        writer.close()
        writer = None
        os.replace(tmp, path)
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
