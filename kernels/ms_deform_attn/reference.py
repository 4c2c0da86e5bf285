"""Pure-JAX reference of the multi-scale deformable attention (MSDA) core.

This is the computation of OV2Seg's ``ms_deform_attn_core_pytorch``: every (query, head) samples
``P`` points on each of ``L`` feature levels, bilinearly, and returns the attention-weighted sum of
the samples. Sampling follows ``F.grid_sample(mode="bilinear", padding_mode="zeros",
align_corners=False)`` on the grid ``2 * loc - 1``: a normalised location ``x`` maps to the pixel
coordinate ``x * W - 0.5`` (pixel centres at ``(k + 0.5) / W``), the four surrounding pixels are
mixed with bilinear weights, and a neighbour outside the level contributes zero (and, being a
constant zero, receives no gradient).

How the gather is organised, and why:

* Each level is padded with one ring of zeros and *packed*: cell ``(i, j)`` of the packed table
  holds the four padded pixels ``(i, j), (i, j+1), (i+1, j), (i+1, j+1)`` side by side. One row of
  the table is therefore the whole 2x2 neighbourhood of a sample, so a single gather over all
  levels, points, heads and batch elements fetches every corner at once.
* Thanks to the zero ring, a sample whose top-left neighbour is in ``[-1, W-1] x [-1, H-1]`` reads
  zeros for exactly the neighbours that lie outside the level. Samples further out are switched off
  by a mask on their weights (their table row is clamped to a valid one that the mask then zeroes).
* Gradients come from autodiff. The fractional part ``px - floor(px)`` has slope one everywhere, so
  at an exact integer pixel coordinate the location gradient is the one-sided (floor-based)
  derivative, which is what ``grid_sample`` returns. The transpose of the gather is a scatter-add
  into the packed table, which autodiff folds back through the packing onto ``value``.

The pixel coordinate is computed with grid_sample's own formula ``((2x - 1 + 1) * W - 1) / 2`` so
that rounding at exact pixel positions matches the original. Arithmetic runs in float32 for
half-precision inputs (float64 stays float64) and the result is cast back to ``value``'s dtype.

The functions here assume validated inputs; :func:`kernels.ms_deform_attn.ms_deform_attn` checks
shapes and dtypes and then calls :func:`ms_deform_attn_reference`.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from kernels.ms_deform_attn.corners import CORNERS, pixel_coordinate, sample_taps
from kernels.ms_deform_attn.shapes import SpatialShapes

__all__ = [
    "SpatialShapes",
    "bilinear_taps",
    "compute_dtype",
    "gather_neighbourhoods",
    "ms_deform_attn_reference",
    "pack_neighbours",
    "packed_level_starts",
    "pixel_coordinate",
]


def compute_dtype(*dtypes: jnp.dtype) -> jnp.dtype:
    """The dtype the core computes in: the promotion of the inputs, at least float32."""
    return jnp.promote_types(jnp.result_type(*dtypes), jnp.float32)


def packed_level_starts(spatial_shapes: SpatialShapes) -> np.ndarray:
    """Offset of each level's block in the packed table, whose level ``l`` has (H+1)*(W+1) rows."""
    sizes = [(h + 1) * (w + 1) for h, w in spatial_shapes]
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


def pack_neighbours(value: jax.Array, spatial_shapes: SpatialShapes) -> jax.Array:
    """(N, S, M, D) values -> (N, S', M, 4, D) table of zero-padded 2x2 neighbourhoods.

    Level ``l`` contributes (H+1)*(W+1) rows; row ``(i, j)`` (row-major) holds the neighbourhood
    whose top-left pixel is ``(i - 1, j - 1)`` of the level, neighbours in ``CORNERS`` order.
    """
    n, _, m, d = value.shape
    blocks = []
    start = 0
    for h, w in spatial_shapes:
        level = value[:, start : start + h * w].reshape(n, h, w, m, d)
        start += h * w
        padded = jnp.pad(level, ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0)))
        corners = [padded[:, dy : dy + h + 1, dx : dx + w + 1] for dy, dx in CORNERS]
        blocks.append(jnp.stack(corners, axis=-2).reshape(n, (h + 1) * (w + 1), m, 4, d))
    return jnp.concatenate(blocks, axis=1)


def bilinear_taps(
    sampling_locations: jax.Array, spatial_shapes: SpatialShapes
) -> tuple[jax.Array, jax.Array]:
    """Packed-table row and the four corner weights of every sampling point.

    The tap rules are :func:`kernels.ms_deform_attn.corners.sample_taps`, applied level by level;
    a parked sample (neighbourhood entirely outside) reads its level's first row with zero weight.

    Args:
      sampling_locations: (N, Lq, M, L, P, 2) normalised (x, y), already in the compute dtype.
      spatial_shapes: static (H, W) per level.

    Returns:
      rows: (N, Lq, M, L, P) int32 row of the packed table (level offset included).
      weights: (N, Lq, M, L, P, 4) bilinear weights in ``CORNERS`` order, zero for samples whose
        neighbourhood lies entirely outside the level.
    """
    zero = jnp.zeros((), sampling_locations.dtype)
    starts = packed_level_starts(spatial_shapes)
    rows, weights = [], []
    for level, (h, w) in enumerate(spatial_shapes):
        taps = sample_taps(
            sampling_locations[..., level, :, 0], sampling_locations[..., level, :, 1], h, w
        )
        # Packed row (i, j) holds the neighbourhood whose top-left pixel is (i - 1, j - 1).
        rows.append(int(starts[level]) + (taps.y0 + 1) * (w + 1) + (taps.x0 + 1))
        corner = jnp.stack([taps.corner_weight(dy, dx) for dy, dx in CORNERS], axis=-1)
        weights.append(jnp.where(taps.inside[..., None], corner, zero))
    return jnp.stack(rows, axis=3), jnp.stack(weights, axis=3)


def gather_neighbourhoods(table: jax.Array, rows: jax.Array) -> jax.Array:
    """Fetch packed rows for every (n, query, head, level, point): one gather in total.

    Args:
      table: (N, S', M, 4, D) packed neighbourhoods.
      rows: (N, Lq, M, L, P) rows of the table.

    Returns:
      (N, Lq, M, L, P, 4, D) the four neighbours of every sample.
    """
    n, s_packed, m, four, d = table.shape
    flat = table.reshape(n * s_packed * m, four * d)
    batch = jnp.arange(n, dtype=jnp.int32).reshape(n, 1, 1, 1, 1)
    head = jnp.arange(m, dtype=jnp.int32).reshape(1, 1, m, 1, 1)
    flat_rows = (batch * s_packed + rows) * m + head
    gathered = flat.at[flat_rows].get(mode="promise_in_bounds")
    return gathered.reshape(*rows.shape, four, d)


def ms_deform_attn_reference(
    value: jax.Array,
    spatial_shapes: Sequence[tuple[int, int]],
    sampling_locations: jax.Array,
    attention_weights: jax.Array,
) -> jax.Array:
    """Multi-scale deformable attention core (no input checks; see the package's public API).

    Args:
      value: (N, S, M, D) per-head values, levels concatenated, each flattened row-major.
      spatial_shapes: static (H, W) per level, sum of H*W equal to S.
      sampling_locations: (N, Lq, M, L, P, 2) normalised (x, y).
      attention_weights: (N, Lq, M, L, P).

    Returns:
      (N, Lq, M*D) in ``value``'s dtype, channel = head * D + d.
    """
    shapes: SpatialShapes = tuple((int(h), int(w)) for h, w in spatial_shapes)
    out_dtype = value.dtype
    dtype = compute_dtype(value.dtype, sampling_locations.dtype, attention_weights.dtype)
    n, lq, m = sampling_locations.shape[:3]
    d = value.shape[-1]

    table = pack_neighbours(value.astype(dtype), shapes)
    rows, corner_weights = bilinear_taps(sampling_locations.astype(dtype), shapes)
    weights = corner_weights * attention_weights.astype(dtype)[..., None]
    samples = gather_neighbourhoods(table, rows)
    # Weighted sum over levels, points and corners; an elementwise product and a reduction (not a
    # dot) so no backend lowers it to reduced-precision matrix units.
    out = jnp.sum(samples * weights[..., None], axis=(3, 4, 5))
    return out.reshape(n, lq, m * d).astype(out_dtype)
