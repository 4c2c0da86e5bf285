"""Pallas TPU (Mosaic) kernels of the MSDA core: forward, and the backward for all three inputs.

TPUs have no fast gather: a data-dependent row read from VMEM is a scalar-addressed load per row.
The kernels therefore turn sampling into dense algebra. For one (batch, head) and a block of
queries, the bilinear sampling of a level is a sparse (queries, H*W) interpolation matrix ``A``
with at most 4*P non-zeros per row (attention weight times bilinear weight). The kernels build
``A`` on the VPU by comparing a pixel iota with each point's top-left pixel (one compare-select
per corner), then

* forward: ``out += A @ V_level`` on the MXU (``V_level``: (H*W, D), resident in VMEM);
* backward: ``grad_V_level += A^T @ g`` (accumulated in VMEM across query blocks), and
  ``G = g @ V_level^T`` whose entries at each corner's pixel are the ``g . v`` terms that the
  attention-weight and location gradients need (read back with the same compare-selects).

``A`` is built ``BlockSizes.pixels`` columns at a time, which bounds VMEM for any level size;
matmuls run at ``Precision.HIGHEST`` with float32 accumulation so the result is exact to float32
rounding (an exact zero times a value adds nothing).

Layout: Mosaic blocks must tile the last two dimensions by (8, 128) or span them, so the wrapper
puts the head axis in front: ``value`` (N, M, S, D), locations (N, M, Lq, L*P*2), weights
(N, M, Lq, L*P), queries padded to a multiple of ``BlockSizes.queries`` (padded queries carry zero
weights). These transposes are XLA copies of the inputs; the grid is (N, M, query blocks).

On CPU the kernels run in TPU interpret mode (``pltpu.InterpretParams``). float64 inputs are
rejected (TPUs have no float64 arithmetic).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from kernels.ms_deform_attn.corners import CORNERS, Taps, sample_taps
from kernels.ms_deform_attn.heuristics import BlockSizes, tpu_block_sizes
from kernels.ms_deform_attn.reference import compute_dtype
from kernels.ms_deform_attn.shapes import SpatialShapes

_HIGHEST = jax.lax.Precision.HIGHEST


# Each level's block of rows in the kernels' value layout starts at a multiple of this, so every
# chunk is a lane-aligned (multiple of 128) slice of whole (8 or 16)-row sublane tiles in any dtype.
_LEVEL_ALIGN = 128


def _padded_size(h: int, w: int) -> int:
    return -(-(h * w) // _LEVEL_ALIGN) * _LEVEL_ALIGN


def _levels(spatial_shapes: SpatialShapes):
    """(level, first row in the padded layout, H, W) of every level."""
    start = 0
    for level, (h, w) in enumerate(spatial_shapes):
        yield level, start, h, w
        start += _padded_size(h, w)


def _chunks(size: int, chunk: int):
    """(first pixel, width) of the one-hot chunks covering ``size`` pixels."""
    for first in range(0, size, chunk):
        yield first, min(chunk, size - first)


def _level_taps(loc, attn, level: int, num_points: int, h: int, w: int, dtype):
    """Per point of ``level``: (taps, attention column, flat top-left pixel), each (Q, 1)."""
    out = []
    for p in range(num_points):
        j = level * num_points + p
        taps = sample_taps(loc[:, 2 * j : 2 * j + 1], loc[:, 2 * j + 1 : 2 * j + 2], h, w)
        out.append((taps, attn[:, j : j + 1], taps.y0 * w + taps.x0))
    return out


def _tap_weight(taps: Taps, attn, dy: int, dx: int, h: int, w: int):
    """Attention times bilinear weight of one corner, zero when the corner is off the level."""
    valid = taps.corner_valid(dy, dx, h, w)
    return jnp.where(valid, attn * taps.corner_weight(dy, dx), 0)


def _forward_kernel(
    loc_ref, attn_ref, value_ref, out_ref, *, spatial_shapes, num_points, blocks, dtype
):
    loc = loc_ref[...].astype(dtype)
    attn = attn_ref[...].astype(dtype)
    acc = jnp.zeros(out_ref.shape, dtype)
    for level, start, h, w in _levels(spatial_shapes):
        points = _level_taps(loc, attn, level, num_points, h, w, dtype)
        weights = [
            [_tap_weight(taps, a, dy, dx, h, w) for dy, dx in CORNERS] for taps, a, _ in points
        ]
        for first, width in _chunks(_padded_size(h, w), blocks.pixels):
            pixel = jax.lax.broadcasted_iota(jnp.int32, (loc.shape[0], width), 1) + first
            interp = jnp.zeros((loc.shape[0], width), dtype)
            for (_, _, top_left), corner_weights in zip(points, weights, strict=True):
                offset = pixel - top_left
                for (dy, dx), weight in zip(CORNERS, corner_weights, strict=True):
                    interp += jnp.where(offset == dy * w + dx, weight, 0)
            values = value_ref[start + first : start + first + width, :].astype(dtype)
            acc += jnp.dot(interp, values, precision=_HIGHEST, preferred_element_type=dtype)
    out_ref[...] = acc.astype(out_ref.dtype)


def _backward_kernel(
    loc_ref,
    attn_ref,
    value_ref,
    grad_out_ref,
    grad_loc_ref,
    grad_attn_ref,
    grad_value_ref,
    *,
    spatial_shapes,
    num_points,
    blocks,
    dtype,
):
    @pl.when(pl.program_id(2) == 0)
    def _():
        grad_value_ref[...] = jnp.zeros(grad_value_ref.shape, grad_value_ref.dtype)

    loc = loc_ref[...].astype(dtype)
    attn = attn_ref[...].astype(dtype)
    g = grad_out_ref[...].astype(dtype)
    rows = loc.shape[0]
    for level, start, h, w in _levels(spatial_shapes):
        points = _level_taps(loc, attn, level, num_points, h, w, dtype)
        weights = [
            [_tap_weight(taps, a, dy, dx, h, w) for dy, dx in CORNERS] for taps, a, _ in points
        ]
        g_dot_v = [[jnp.zeros((rows, 1), dtype) for _ in CORNERS] for _ in points]
        for first, width in _chunks(_padded_size(h, w), blocks.pixels):
            lo, hi = start + first, start + first + width
            values = value_ref[lo:hi, :].astype(dtype)
            # (rows, width): g . v for every pixel of the chunk.
            products = jax.lax.dot_general(
                g,
                values,
                (((1,), (1,)), ((), ())),
                precision=_HIGHEST,
                preferred_element_type=dtype,
            )
            pixel = jax.lax.broadcasted_iota(jnp.int32, (rows, width), 1) + first
            interp = jnp.zeros((rows, width), dtype)
            for i, ((_, _, top_left), corner_weights) in enumerate(
                zip(points, weights, strict=True)
            ):
                offset = pixel - top_left
                for c, ((dy, dx), weight) in enumerate(zip(CORNERS, corner_weights, strict=True)):
                    hit = offset == dy * w + dx
                    interp += jnp.where(hit, weight, 0)
                    g_dot_v[i][c] += jnp.sum(jnp.where(hit, products, 0), axis=1, keepdims=True)
            grad_values = jax.lax.dot_general(
                interp,
                g,
                (((0,), (0,)), ((), ())),
                precision=_HIGHEST,
                preferred_element_type=dtype,
            )
            grad_value_ref[lo:hi, :] += grad_values.astype(grad_value_ref.dtype)
        for i, (taps, a, _) in enumerate(points):
            j = level * num_points + i
            grad_a = jnp.zeros((rows, 1), dtype)
            grad_x = jnp.zeros((rows, 1), dtype)
            grad_y = jnp.zeros((rows, 1), dtype)
            for c, (dy, dx) in enumerate(CORNERS):
                # A corner off the level may alias a real pixel (x0+1 = W wraps to the next row).
                gv = jnp.where(taps.corner_valid(dy, dx, h, w), g_dot_v[i][c], 0)
                grad_a += taps.corner_weight(dy, dx) * gv
                wx = taps.fx if dx else 1 - taps.fx
                wy = taps.fy if dy else 1 - taps.fy
                grad_x += (wy if dx else -wy) * gv
                grad_y += (wx if dy else -wx) * gv
            grad_x = jnp.where(taps.inside, a * w * grad_x, 0)
            grad_y = jnp.where(taps.inside, a * h * grad_y, 0)
            grad_attn_ref[:, j : j + 1] = grad_a.astype(grad_attn_ref.dtype)
            grad_loc_ref[:, 2 * j : 2 * j + 1] = grad_x.astype(grad_loc_ref.dtype)
            grad_loc_ref[:, 2 * j + 1 : 2 * j + 2] = grad_y.astype(grad_loc_ref.dtype)


def _heads_first(value, spatial_shapes, locations, attention_weights, queries_per_block: int):
    """(N, M, S', D) values with each level zero-padded to a multiple of ``_LEVEL_ALIGN`` rows,
    (N, M, Lq', L*P*2) locations and (N, M, Lq', L*P) weights with the queries padded to a
    multiple of ``queries_per_block`` (padded queries have zero weight)."""
    n, lq, m = attention_weights.shape[:3]
    values = value.transpose(0, 2, 1, 3)
    blocks, start = [], 0
    for h, w in spatial_shapes:
        level = values[:, :, start : start + h * w]
        blocks.append(jnp.pad(level, ((0, 0), (0, 0), (0, _padded_size(h, w) - h * w), (0, 0))))
        start += h * w
    pad = -lq % queries_per_block
    locs = locations.reshape(n, lq, m, -1).transpose(0, 2, 1, 3)
    attn = attention_weights.reshape(n, lq, m, -1).transpose(0, 2, 1, 3)
    if pad:
        locs = jnp.pad(locs, ((0, 0), (0, 0), (0, pad), (0, 0)))
        attn = jnp.pad(attn, ((0, 0), (0, 0), (0, pad), (0, 0)))
    return jnp.concatenate(blocks, axis=2), locs, attn


def _unpad_levels(values: jax.Array, spatial_shapes: SpatialShapes) -> jax.Array:
    """Inverse of the level padding of :func:`_heads_first` on an (N, M, S', D) array."""
    return jnp.concatenate(
        [values[:, :, start : start + h * w] for _, start, h, w in _levels(spatial_shapes)],
        axis=2,
    )


def _specs(s: int, d: int, q: int, lp: int):  # noqa: D103
    """Block specs of (value, locations, weights, per-query rows of width d) on the grid."""
    value = pl.BlockSpec((None, None, s, d), lambda n, m, i: (n, m, 0, 0))
    locs = pl.BlockSpec((None, None, q, 2 * lp), lambda n, m, i: (n, m, i, 0))
    attn = pl.BlockSpec((None, None, q, lp), lambda n, m, i: (n, m, i, 0))
    rows = pl.BlockSpec((None, None, q, d), lambda n, m, i: (n, m, i, 0))
    return value, locs, attn, rows


def _interpret_params(interpret: bool):
    return pltpu.InterpretParams() if interpret else False


def _check_dtype(dtype) -> None:
    # TPUs have no float64; interpret mode is not allowed to pretend otherwise.
    if dtype == jnp.float64:
        raise ValueError(
            "ms_deform_attn: implementation='pallas_tpu' computes in float32 at most and got "
            "float64 inputs; use implementation='xla' (or 'auto') for float64"
        )


class _Operands(NamedTuple):
    """What the forward and backward calls share: the tiles, the compute dtype, the heads-first
    padded operands and their block specs (value, locations, weights, per-query rows)."""

    blocks: BlockSizes
    dtype: jnp.dtype
    values: jax.Array
    locs: jax.Array
    attn: jax.Array
    specs: tuple
    num_points: int

    def bind(self, kernel, spatial_shapes: SpatialShapes):
        return functools.partial(
            kernel,
            spatial_shapes=spatial_shapes,
            num_points=self.num_points,
            blocks=self.blocks,
            dtype=self.dtype,
        )


def _operands(
    value, spatial_shapes, sampling_locations, attention_weights, blocks: BlockSizes | None
) -> _Operands:
    lq, _, num_levels, num_points = sampling_locations.shape[1:5]
    blocks = blocks or tpu_block_sizes(lq, spatial_shapes)
    dtype = compute_dtype(value.dtype, sampling_locations.dtype, attention_weights.dtype)
    _check_dtype(dtype)
    values, locs, attn = _heads_first(
        value, spatial_shapes, sampling_locations, attention_weights, blocks.queries
    )
    specs = _specs(values.shape[2], value.shape[-1], blocks.queries, num_levels * num_points)
    return _Operands(blocks, dtype, values, locs, attn, specs, num_points)


def forward(
    value: jax.Array,
    spatial_shapes: SpatialShapes,
    sampling_locations: jax.Array,
    attention_weights: jax.Array,
    *,
    blocks: BlockSizes | None = None,
    interpret: bool = False,
) -> jax.Array:
    """(N, Lq, M*D) output in ``value``'s dtype; arguments as ``ms_deform_attn``."""
    n, s, m, d = value.shape
    lq = sampling_locations.shape[1]
    ops = _operands(value, spatial_shapes, sampling_locations, attention_weights, blocks)
    blocks, values, locs, attn = ops.blocks, ops.values, ops.locs, ops.attn
    q = blocks.queries
    value_spec, loc_spec, attn_spec, row_spec = ops.specs
    out = pl.pallas_call(
        ops.bind(_forward_kernel, spatial_shapes),
        grid=(n, m, locs.shape[2] // q),
        in_specs=[loc_spec, attn_spec, value_spec],
        out_specs=row_spec,
        out_shape=jax.ShapeDtypeStruct((n, m, locs.shape[2], d), value.dtype),
        compiler_params=pltpu.CompilerParams(
            dimension_semantics=("parallel", "parallel", "parallel"),
            vmem_limit_bytes=blocks.vmem_limit_bytes,
        ),
        interpret=_interpret_params(interpret),
        name="ms_deform_attn_fwd_tpu",
    )(locs, attn, values)
    return out[:, :, :lq].transpose(0, 2, 1, 3).reshape(n, lq, m * d)


def backward(
    value: jax.Array,
    spatial_shapes: SpatialShapes,
    sampling_locations: jax.Array,
    attention_weights: jax.Array,
    grad_output: jax.Array,
    *,
    blocks: BlockSizes | None = None,
    interpret: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Gradients (value, sampling_locations, attention_weights), each in its input's dtype."""
    n, s, m, d = value.shape
    lq = sampling_locations.shape[1]
    ops = _operands(value, spatial_shapes, sampling_locations, attention_weights, blocks)
    blocks, dtype, values, locs, attn = ops.blocks, ops.dtype, ops.values, ops.locs, ops.attn
    q = blocks.queries
    padded = locs.shape[2]
    grad_rows = grad_output.reshape(n, lq, m, d).transpose(0, 2, 1, 3)
    grad_rows = jnp.pad(grad_rows, ((0, 0), (0, 0), (0, padded - lq), (0, 0)))
    value_spec, loc_spec, attn_spec, row_spec = ops.specs
    grad_locs, grad_attn, grad_values = pl.pallas_call(
        ops.bind(_backward_kernel, spatial_shapes),
        grid=(n, m, padded // q),
        in_specs=[loc_spec, attn_spec, value_spec, row_spec],
        out_specs=[loc_spec, attn_spec, value_spec],
        out_shape=[
            jax.ShapeDtypeStruct(locs.shape, sampling_locations.dtype),
            jax.ShapeDtypeStruct(attn.shape, attention_weights.dtype),
            jax.ShapeDtypeStruct(values.shape, dtype),
        ],
        compiler_params=pltpu.CompilerParams(
            # The value gradient of a (batch, head) accumulates over the query blocks.
            dimension_semantics=("parallel", "parallel", "arbitrary"),
            vmem_limit_bytes=blocks.vmem_limit_bytes,
        ),
        interpret=_interpret_params(interpret),
        name="ms_deform_attn_bwd_tpu",
    )(locs, attn, values, grad_rows)

    def natural(x, shape):
        return x[:, :, :lq].transpose(0, 2, 1, 3).reshape(shape)

    grad_value = _unpad_levels(grad_values, spatial_shapes).transpose(0, 2, 1, 3)
    grad_value = grad_value.astype(value.dtype)
    return (
        grad_value,
        natural(grad_locs, sampling_locations.shape),
        natural(grad_attn, attention_weights.shape),
    )
