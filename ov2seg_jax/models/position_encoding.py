"""DETR's normalised sine position encoding, as Mask2Former uses it (no padding mask).

It depends only on the static feature-map size, so it is built in numpy (float32, the same
operations the original performs) and enters the jitted graph as a constant.
"""

from __future__ import annotations

import functools
import math

import numpy as np


@functools.lru_cache(maxsize=64)
def sine_position_encoding(
    height: int, width: int, num_pos_feats: int = 128, temperature: float = 10000.0
) -> np.ndarray:
    """(height, width, 2 * num_pos_feats) float32: y features first, then x; sin/cos interleaved."""
    f32 = np.float32
    eps = f32(1e-6)
    scale = f32(2 * math.pi)
    y_embed = np.arange(1, height + 1, dtype=f32)[:, None] * np.ones((1, width), f32)
    x_embed = np.ones((height, 1), f32) * np.arange(1, width + 1, dtype=f32)[None, :]
    y_embed = y_embed / (y_embed[-1:, :] + eps) * scale
    x_embed = x_embed / (x_embed[:, -1:] + eps) * scale
    dim_t = np.arange(num_pos_feats, dtype=f32)
    dim_t = np.power(f32(temperature), (f32(2) * np.floor(dim_t / f32(2)) / f32(num_pos_feats)))
    pos_x = x_embed[:, :, None] / dim_t
    pos_y = y_embed[:, :, None] / dim_t

    def interleave(p: np.ndarray) -> np.ndarray:
        return np.stack([np.sin(p[:, :, 0::2]), np.cos(p[:, :, 1::2])], axis=3).reshape(
            height, width, num_pos_feats
        )

    out = np.concatenate([interleave(pos_y), interleave(pos_x)], axis=2).astype(f32)
    out.setflags(write=False)
    return out
