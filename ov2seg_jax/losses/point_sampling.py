"""Reading mask maps at continuous points, and PointRend's uncertainty-driven choice of points.

The mask losses and the matcher never compare whole masks: they compare predicted and target
masks at a few thousand points. Points are normalised ``(x, y)`` in ``[0, 1]``, ``x`` along the
width. A map is read as detectron2's ``point_sample`` reads it, i.e. ``F.grid_sample`` with
``mode="bilinear"``, ``padding_mode="zeros"``, ``align_corners=False`` on the grid ``2 * p - 1``:
the point maps to pixel coordinate ``x * W - 0.5`` (pixel centres at ``(k + 0.5) / W``), the four
surrounding pixels are mixed bilinearly, and a neighbour outside the map contributes zero.
Because coordinates are normalised, predicted masks (stride 4) and target masks (full padded
image) are read at the same places without resizing either.

:func:`point_sample` reads one map per point set, chosen by an index, so the matched pairs of a
batch read their own prediction and target without copying the maps. :func:`importance_points` is
detectron2's ``get_uncertain_point_coords_with_randomness`` with its two random draws passed in
(see :mod:`ov2seg_jax.losses.criterion` for who draws them).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from kernels.ms_deform_attn.reference import pixel_coordinate


def _compute_dtype(dtype: jnp.dtype) -> jnp.dtype:
    """Floating maps keep their precision (at least float32); bool/int masks read as float32."""
    if jnp.issubdtype(dtype, jnp.floating):
        return jnp.promote_types(dtype, jnp.float32)
    return jnp.dtype(jnp.float32)


def point_sample(maps: jax.Array, points: jax.Array, index: jax.Array | None = None) -> jax.Array:
    """Bilinear values of ``maps`` at ``points`` (grid_sample rule, zero padding).

    Args:
      maps: (*batch, K, H, W) float, bool or integer maps (e.g. mask logits or binary masks).
      points: (*batch, M, P, 2) normalised (x, y) points; set ``m`` is read from map
        ``index[..., m]`` of the same batch element.
      index: (*batch, M) integer map index in ``[0, K)``; ``None`` means ``M == K`` and set ``m``
        reads map ``m``. Out-of-range indices are clamped.

    Returns:
      (*batch, M, P) values in float32 (float64 maps stay float64). Differentiable with respect to
      floating ``maps``; the points carry no gradient worth using (callers stop it).
    """
    *batch, k, h, w = maps.shape
    batch = tuple(batch)
    if points.shape[-1] != 2 or tuple(points.shape[: len(batch)]) != batch:
        raise ValueError(
            f"points must have shape (*{batch}, M, P, 2) to match maps {maps.shape}, got "
            f"{points.shape}"
        )
    m = points.shape[-3]
    if index is None:
        if m != k:
            raise ValueError(
                f"without an index, points {points.shape} need one set per map (K={k})"
            )
        index = jnp.broadcast_to(jnp.arange(k, dtype=jnp.int32), (*batch, k))
    elif tuple(index.shape) != (*batch, m):
        raise ValueError(f"index must have shape {(*batch, m)}, got {index.shape}")

    dtype = _compute_dtype(maps.dtype)
    px = pixel_coordinate(points[..., 0].astype(dtype), w)
    py = pixel_coordinate(points[..., 1].astype(dtype), h)
    x0 = jnp.floor(px)
    y0 = jnp.floor(py)
    x1 = x0 + 1
    y1 = y0 + 1
    # Corner order and weight arithmetic as grid_sample: nw, ne, sw, se.
    corners = (
        (x0, y0, (x1 - px) * (y1 - py)),
        (x1, y0, (px - x0) * (y1 - py)),
        (x0, y1, (x1 - px) * (py - y0)),
        (x1, y1, (px - x0) * (py - y0)),
    )
    n_rows = math.prod(batch) * k
    flat = maps.reshape(n_rows, h * w)
    batch_offset = (
        jnp.arange(math.prod(batch), dtype=jnp.int32).reshape(*batch, 1) * k
        if batch
        else jnp.zeros((), jnp.int32)
    )
    rows = (batch_offset + jnp.clip(index.astype(jnp.int32), 0, k - 1))[..., None]  # (*b, M, 1)
    out = None
    for cx, cy, weight in corners:
        inside = (cx >= 0) & (cx <= w - 1) & (cy >= 0) & (cy <= h - 1)
        pix = jnp.clip(cy, 0, h - 1).astype(jnp.int32) * w + jnp.clip(cx, 0, w - 1).astype(
            jnp.int32
        )
        value = flat[rows, pix].astype(dtype)
        term = jnp.where(inside, value * weight, jnp.zeros((), dtype))
        out = term if out is None else out + term
    return out


def uncertainty(logits: jax.Array) -> jax.Array:
    """PointRend's class-agnostic uncertainty: ``-|logit|`` (highest at the decision boundary)."""
    return -jnp.abs(logits)


def num_importance_points(num_points: int, importance_sample_ratio: float) -> int:
    """How many of ``num_points`` are picked by uncertainty (the rest are uniform)."""
    return int(importance_sample_ratio * num_points)


def num_candidate_points(num_points: int, oversample_ratio: float) -> int:
    """How many uniform candidates the uncertain points are picked from."""
    return int(num_points * oversample_ratio)


def importance_points(
    logit_maps: jax.Array,
    index: jax.Array,
    candidates: jax.Array,
    random_points: jax.Array,
    num_important: int,
) -> jax.Array:
    """The ``num_important`` most uncertain candidates of each set, then the uniform points.

    Args:
      logit_maps: (*batch, K, h, w) mask logits the uncertainty is read from.
      index: (*batch, M) which map each point set belongs to.
      candidates: (*batch, M, S, 2) uniform candidate points (S = num_points * oversample).
      random_points: (*batch, M, P - num_important, 2) uniform points appended unchanged.
      num_important: points kept from the candidates, ``int(importance_ratio * P)``.

    Returns:
      (*batch, M, P, 2) points, gradient stopped. The order inside a set does not matter to the
      losses (they average over points); only which candidates are kept does.
    """
    if not 0 <= num_important <= candidates.shape[-2]:
        raise ValueError(
            f"cannot keep {num_important} of {candidates.shape[-2]} candidate points per mask"
        )
    scores = uncertainty(point_sample(jax.lax.stop_gradient(logit_maps), candidates, index))
    _, keep = jax.lax.top_k(scores, num_important)
    chosen = jnp.take_along_axis(candidates, keep[..., None], axis=-2)
    return jax.lax.stop_gradient(
        jnp.concatenate([chosen, random_points.astype(candidates.dtype)], axis=-2)
    )
