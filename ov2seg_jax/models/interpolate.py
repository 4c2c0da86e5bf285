"""Bilinear resizing with PyTorch's ``F.interpolate(mode="bilinear", align_corners=False)`` rule.

The original resizes in three places: the FPN's upsampling in the pixel decoder, the decoder's
attention masks (a downsampling, without antialiasing) and the final instance masks. Each output
pixel ``d`` reads source coordinate ``s = (d + 0.5) * in / out - 0.5``, clamped below at 0, and mixes
pixels ``floor(s)`` and ``floor(s) + 1`` (the latter clamped to the last pixel). No antialiasing,
unlike ``jax.image.resize``'s default for downsampling.

The resize is separable, so it is written as two small matrix products with interpolation matrices
built once per static shape. The matrix arithmetic is done in float32 exactly as PyTorch computes
its source indices and weights.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.lru_cache(maxsize=256)
def interpolation_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) float32 matrix whose rows hold the two bilinear weights."""
    if in_size <= 0 or out_size <= 0:
        raise ValueError(f"resize sizes must be positive, got in={in_size} out={out_size}")
    scale = np.float32(in_size) / np.float32(out_size)
    dst = np.arange(out_size, dtype=np.float32)
    src = (dst + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = src.astype(np.int64)  # floor, since src >= 0
    i1 = np.where(i0 < in_size - 1, i0 + 1, i0)
    l1 = (src - i0.astype(np.float32)).astype(np.float32)
    l0 = (np.float32(1.0) - l1).astype(np.float32)
    m = np.zeros((out_size, in_size), np.float32)
    rows = np.arange(out_size)
    np.add.at(m, (rows, i0), l0)
    np.add.at(m, (rows, i1), l1)
    m.setflags(write=False)
    return m


def resize_bilinear(x: jax.Array, size: tuple[int, int], *, layout: str = "NHWC") -> jax.Array:
    """Resize the two spatial axes of ``x`` to ``size`` = (height, width).

    ``layout`` names where the spatial axes are: ``"NHWC"`` (axes -3, -2) or ``"NCHW"`` / ``"HW"``
    (axes -2, -1). Any number of leading axes is allowed.
    """
    out_h, out_w = int(size[0]), int(size[1])
    if layout == "NHWC":
        in_h, in_w = x.shape[-3], x.shape[-2]
        spec = "...hwc,Hh,Ww->...HWc"
    elif layout in ("NCHW", "HW"):
        in_h, in_w = x.shape[-2], x.shape[-1]
        spec = "...hw,Hh,Ww->...HW"
    else:
        raise ValueError(f"layout must be 'NHWC', 'NCHW' or 'HW', got {layout!r}")
    if (in_h, in_w) == (out_h, out_w):
        return x
    mh = jnp.asarray(interpolation_matrix(in_h, out_h), x.dtype)
    mw = jnp.asarray(interpolation_matrix(in_w, out_w), x.dtype)
    return jnp.einsum(spec, x, mh, mw, precision=jax.lax.Precision.HIGHEST)
