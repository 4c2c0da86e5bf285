"""Frame normalisation and padding, as the original's meta-architecture does it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# ImageNet statistics in RGB order, in 0..255 units (detectron2's PIXEL_MEAN / PIXEL_STD).
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


def padded_size(height: int, width: int, divisibility: int = 32) -> tuple[int, int]:
    """The smallest (H, W) >= the input that are multiples of ``divisibility``."""
    d = divisibility
    return (-(-height // d) * d, -(-width // d) * d)


def normalize_and_pad(
    frames: jax.Array | np.ndarray,
    divisibility: int = 32,
    target_size: tuple[int, int] | None = None,
) -> jax.Array:
    """(T, H, W, 3) RGB uint8 (or float 0..255) -> (T, Hp, Wp, 3) float32 normalised frames.

    Each frame is normalised per channel, then zero-padded (in normalised units) at the bottom
    and right to ``target_size`` (default: the next multiple of ``divisibility``). The padding
    is an ordinary input to the network, exactly as in the original.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) RGB, got shape {tuple(frames.shape)}")
    t, h, w, _ = frames.shape
    hp, wp = target_size or padded_size(h, w, divisibility)
    if hp < h or wp < w:
        raise ValueError(f"target size {(hp, wp)} is smaller than the frames {(h, w)}")
    mean = jnp.asarray(PIXEL_MEAN, jnp.float32)
    std = jnp.asarray(PIXEL_STD, jnp.float32)
    x = (jnp.asarray(frames, jnp.float32) - mean) / std
    return jnp.pad(x, ((0, 0), (0, hp - h), (0, wp - w), (0, 0)))
