"""Bilinear taps of one sampling point, as elementwise array math usable inside Pallas kernels.

The reference (:mod:`kernels.ms_deform_attn.reference`) gathers packed 2x2 neighbourhoods; the
kernels instead fetch (GPU) or select (TPU) each of the four neighbours on its own. All of them
take their taps from :func:`sample_taps`, the one place the rules are written (the native CPU
core, ``native/msda_cpu.cc``, repeats them in C++):

* location ``x`` maps to the pixel coordinate ``x * W - 0.5`` through grid_sample's own formula
  (:func:`pixel_coordinate`), so rounding matches the original;
* the top-left neighbour is ``(floor(py), floor(px))`` and the fractions are ``p - floor(p)``, so
  the location gradient at an exact integer coordinate is the one-sided (floor-based) one;
* a neighbour outside the level contributes zero and receives nothing; a sample whose whole
  neighbourhood is outside (including non-finite locations) is parked at top-left ``(-1, -1)``
  with zero fractions, which makes every tap weight and every gradient term exactly zero and
  keeps the integer conversion defined.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


def pixel_coordinate(loc: jax.Array, size: jax.Array | int) -> jax.Array:
    """grid_sample's un-normalisation (align_corners=False) of the grid ``2 * loc - 1``."""
    grid = 2 * loc - 1
    return ((grid + 1) * size - 1) / 2


# (dy, dx) of the four neighbours relative to the top-left one.
CORNERS: tuple[tuple[int, int], ...] = ((0, 0), (0, 1), (1, 0), (1, 1))


@dataclasses.dataclass(frozen=True)
class Taps:
    """Top-left neighbour and fractions of a batch of samples on one level (same shapes)."""

    x0: jax.Array  # int32 column of the top-left neighbour, in [-1, W-1]
    y0: jax.Array  # int32 row of the top-left neighbour, in [-1, H-1]
    fx: jax.Array  # fractional offsets in [0, 1), compute dtype
    fy: jax.Array
    inside: jax.Array  # bool: some neighbour may lie on the level

    def corner_weight(self, dy: int, dx: int) -> jax.Array:
        """Bilinear weight of neighbour (dy, dx), ignoring whether it lies on the level."""
        wx = self.fx if dx else 1 - self.fx
        wy = self.fy if dy else 1 - self.fy
        return wy * wx

    def corner_valid(self, dy: int, dx: int, height: int, width: int) -> jax.Array:
        """Whether neighbour (dy, dx) lies on the ``height`` x ``width`` level."""
        xi = self.x0 + dx
        yi = self.y0 + dy
        return (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)


def sample_taps(x: jax.Array, y: jax.Array, height: int, width: int) -> Taps:
    """Taps of samples at normalised ``(x, y)`` on a ``height`` x ``width`` level.

    Args:
      x, y: normalised coordinates (any, equal shapes) in the compute dtype.
      height, width: static level size.
    """
    px = pixel_coordinate(x, width)
    py = pixel_coordinate(y, height)
    fx0 = jnp.floor(px)
    fy0 = jnp.floor(py)
    # NaN and +-inf fail every comparison, so they land in the parked branch.
    inside = (fx0 >= -1) & (fx0 <= width - 1) & (fy0 >= -1) & (fy0 <= height - 1)
    zero = jnp.zeros((), px.dtype)
    return Taps(
        x0=jnp.where(inside, fx0, -1).astype(jnp.int32),
        y0=jnp.where(inside, fy0, -1).astype(jnp.int32),
        fx=jnp.where(inside, px - fx0, zero),
        fy=jnp.where(inside, py - fy0, zero),
        inside=inside,
    )
