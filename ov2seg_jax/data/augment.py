"""Large-scale jitter (LSJ) as the original's LVIS mapper applies it, in TensorFlow ops.

Order and constants of detectron2's ``RandomFlip -> ResizeScale -> FixedSizeCrop``:

1. horizontal flip with probability 1/2;
2. ``s ~ U(min_scale, max_scale)``; scale = ``min(S*s/h, S*s/w)``; resized size
   ``round(h*scale) x round(w*scale)`` (round half to even, like numpy);
3. crop of at most ``S x S`` at offset ``round(max(size - S, 0) * u)`` with one ``u ~ U(0, 1)``
   shared by both axes, then padding at the bottom/right to ``S x S`` with value 128 (image) and
   0 (masks).

Every random draw is a stateless function of a 2-int seed (the run seed and the example's global
position), so the same example is augmented the same way eagerly or inside tf.data, on any host,
before or after a resume; all frames of a clip share one draw. Images are resized with an
antialiased bilinear filter (PIL's, which detectron2 uses) evaluated only on the crop window;
masks are resampled by nearest neighbour (the source pixel whose centre is nearest), which keeps
them aligned with the image pixels (exactly so with ``interpolation="nearest"``).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class LSJConfig:
    """Large-scale jitter settings, the fields of ``config.data`` of the same names."""

    image_size: int
    min_scale: float
    max_scale: float
    random_flip: bool
    pad_value: float
    interpolation: str  # "bilinear" or "nearest"

    def __post_init__(self):
        if not 0 < self.min_scale <= self.max_scale:
            raise ValueError(
                f"need 0 < min_scale <= max_scale, got {self.min_scale}, {self.max_scale}"
            )
        if self.interpolation not in ("bilinear", "nearest"):
            raise ValueError(
                f"interpolation must be 'bilinear' or 'nearest': {self.interpolation!r}"
            )


@dataclasses.dataclass(frozen=True)
class LSJParams:
    """One draw: flip, resized size (out_h, out_w), crop offset (off_y, off_x); int32 scalars."""

    flip: tf.Tensor
    out_h: tf.Tensor
    out_w: tf.Tensor
    off_y: tf.Tensor
    off_x: tf.Tensor


def sample_lsj(seed: tf.Tensor, height: tf.Tensor, width: tf.Tensor, cfg: LSJConfig) -> LSJParams:
    """Draw the LSJ parameters for a frame of ``height x width`` from a stateless ``seed`` (2,)."""
    u = tf.random.stateless_uniform([3], seed=tf.cast(seed, tf.int64), dtype=tf.float64)
    flip = tf.logical_and(tf.constant(cfg.random_flip), u[0] < 0.5)
    s = cfg.min_scale + (cfg.max_scale - cfg.min_scale) * u[1]
    h = tf.cast(height, tf.float64)
    w = tf.cast(width, tf.float64)
    target = cfg.image_size * s
    scale = tf.minimum(target / h, target / w)
    out_h = tf.cast(tf.round(h * scale), tf.int32)
    out_w = tf.cast(tf.round(w * scale), tf.int32)
    size = cfg.image_size
    off_y = tf.cast(tf.round(tf.cast(tf.maximum(out_h - size, 0), tf.float64) * u[2]), tf.int32)
    off_x = tf.cast(tf.round(tf.cast(tf.maximum(out_w - size, 0), tf.float64) * u[2]), tf.int32)
    return LSJParams(flip, out_h, out_w, off_y, off_x)


def _source_index(off: tf.Tensor, count: tf.Tensor, out: tf.Tensor, src: tf.Tensor) -> tf.Tensor:
    """Nearest source pixel (int32) of resized pixels ``off .. off + count - 1``."""
    pos = tf.cast(off + tf.range(count), tf.float64) + 0.5
    idx = tf.floor(pos * tf.cast(src, tf.float64) / tf.cast(out, tf.float64))
    return tf.clip_by_value(tf.cast(idx, tf.int32), 0, src - 1)


def _crop_extent(p: LSJParams, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.minimum(p.out_h, size), tf.minimum(p.out_w, size)


def _nearest_crop(x: tf.Tensor, p: LSJParams, size: int) -> tf.Tensor:
    """Resample the last two axes (H, W) of ``x`` onto the crop window by nearest neighbour."""
    h, w = tf.shape(x)[-2], tf.shape(x)[-1]
    ch, cw = _crop_extent(p, size)
    rows = _source_index(p.off_y, ch, p.out_h, h)
    cols = _source_index(p.off_x, cw, p.out_w, w)
    cols = tf.where(p.flip, w - 1 - cols, cols)
    return tf.gather(tf.gather(x, rows, axis=-2), cols, axis=-1)


def _pad_hw(x: tf.Tensor, size: int, value, h_axis: int) -> tf.Tensor:
    """Pad axes ``h_axis`` and ``h_axis + 1`` at the end to ``size``."""
    rank = len(x.shape)
    shape = tf.shape(x)
    paddings = [[0, 0]] * rank
    paddings[h_axis] = [0, size - shape[h_axis]]
    paddings[h_axis + 1] = [0, size - shape[h_axis + 1]]
    out = tf.pad(x, paddings, constant_values=tf.cast(value, x.dtype))
    static = list(x.shape)
    static[h_axis] = size
    static[h_axis + 1] = size
    return tf.ensure_shape(out, static)


def transform_frames(frames: tf.Tensor, p: LSJParams, cfg: LSJConfig) -> tf.Tensor:
    """uint8 frames (T, H, W, 3) -> uint8 (T, S, S, 3): flip, resize, crop, pad with 128."""
    size = cfg.image_size
    if cfg.interpolation == "nearest":
        chw = tf.transpose(frames, [0, 3, 1, 2])
        out = tf.transpose(_nearest_crop(chw, p, size), [0, 2, 3, 1])
    else:
        x = tf.cast(frames, tf.float32)
        x = tf.cond(p.flip, lambda: tf.reverse(x, axis=[2]), lambda: x)
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        ch, cw = _crop_extent(p, size)
        scale = tf.stack(
            [
                tf.cast(p.out_h, tf.float32) / tf.cast(h, tf.float32),
                tf.cast(p.out_w, tf.float32) / tf.cast(w, tf.float32),
            ]
        )
        # Output pixel i samples the resized image at i + offset: the crop, computed directly.
        translation = -tf.cast(tf.stack([p.off_y, p.off_x]), tf.float32)
        x = tf.raw_ops.ScaleAndTranslate(
            images=x,
            size=tf.stack([ch, cw]),
            scale=scale,
            translation=translation,
            kernel_type="triangle",
            antialias=True,
        )
        out = tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)
    return _pad_hw(out, size, cfg.pad_value, h_axis=1)


def transform_masks(masks: tf.Tensor, p: LSJParams, cfg: LSJConfig) -> tf.Tensor:
    """Masks (..., H, W) (any dtype, nonzero inside) -> bool (..., S, S), zero in the padding."""
    out = _nearest_crop(tf.cast(masks, tf.bool), p, cfg.image_size)
    return _pad_hw(out, cfg.image_size, False, h_axis=len(masks.shape) - 2)


def padding_mask(p: LSJParams, cfg: LSJConfig) -> tf.Tensor:
    """bool (S, S): True on the pixels added by padding (outside the image content)."""
    size = cfg.image_size
    ch, cw = _crop_extent(p, size)
    r = tf.range(size)
    return tf.logical_or(r[:, None] >= ch, r[None, :] >= cw)
