"""Pallas GPU kernels of the MSDA core: forward, and the backward for all three inputs.

Lowering (the one place it is chosen): **Triton**. jax 0.10 lowers ``pallas_call`` on CUDA through
Mosaic GPU by default, but Mosaic GPU moves data with TMA/async copies of rectangular tiles and
warpgroup-wide register arrays; it has no per-thread gather from global memory (a load whose row
index differs per lane) and no scatter-add atomics with data-dependent addresses. MSDA is exactly
that: every (query, head, level, point, corner) reads a data-dependent row of ``value``, and the
value gradient scatters back to data-dependent rows. Triton expresses both (pointer-tensor loads
with masks, ``atomic_add``), so ``GPU_LOWERING`` selects it through its ``CompilerParams``. When
Mosaic GPU gains gathers/atomics, switch ``_compiler_params`` and keep the kernels' math.

Layout: everything is seen as ``N*Lq*M`` (query, head) rows, which is how the model's projections
already lay the data out, so no input is transposed:

* ``value`` (N, S, M, D) as rows ``(n*S + s)*M + m`` of width D;
* ``sampling_locations`` (N, Lq, M, L, P, 2) as rows of L*P*2, ``attention_weights`` as rows of
  L*P, and the output (N, Lq, M*D) as rows of D: row ``(n*Lq + q)*M + m`` in all three.

A program takes ``BlockSizes.rows`` consecutive rows. For each of the static L*P sampling points
it reads the point's coordinates and weight for its rows (one column each), and for each of the
four corners gathers a (rows, D) tile of ``value`` with out-of-level corners masked off, adding it
into a float32 accumulator with weight ``attention * bilinear``.

Backward recomputes the taps and, per corner, forms ``g . v`` (rows,) from the output cotangent
``g``: it feeds the attention-weight gradient (bilinear weight times it) and the location gradient
(its x/y differences times the level size), and ``attention * bilinear * g`` is added to the
corner's row of the value gradient with an atomic add. Contention concentrates on the coarse level
(every query samples it); the atomics are D-wide (128 contiguous bytes at D=32), so each one is a
single L2 transaction and the coarse level, being small, stays L2-resident.

Triton needs power-of-two array sizes, so D is padded to the next power of two when it is not one
(OV2Seg's D=32 is not padded). In interpret mode (CPU) the atomic add is done one row at a time,
because the interpreter's vector atomic add drops repeated indices and does not take a mask; the
compiled vector form is therefore exercised only on a GPU.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plt

from kernels.ms_deform_attn.corners import CORNERS, sample_taps
from kernels.ms_deform_attn.heuristics import BlockSizes, gpu_block_sizes, next_power_of_two
from kernels.ms_deform_attn.reference import compute_dtype
from kernels.ms_deform_attn.shapes import SpatialShapes

GPU_LOWERING = "triton"


def _compiler_params(blocks: BlockSizes):
    """Compiler parameters that pick the lowering (``GPU_LOWERING``) and its launch settings."""
    assert GPU_LOWERING == "triton"
    return plt.CompilerParams(num_warps=blocks.num_warps, num_stages=blocks.num_stages)


def _level_starts(spatial_shapes: SpatialShapes) -> list[int]:
    starts, total = [], 0
    for h, w in spatial_shapes:
        starts.append(total)
        total += h * w
    return starts


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Static sizes the kernels index with."""

    spatial_shapes: SpatialShapes
    num_values: int  # S
    num_queries: int  # Lq
    num_heads: int  # M
    num_points: int  # P
    width: int  # D padded to a power of two
    num_rows: int  # N*Lq*M


def _row_block(layout: _Layout, rows_per_block: int):
    """Row ids of this program, their in-bounds mask, and each row's offset into ``value``."""
    rows = pl.program_id(0) * rows_per_block + jnp.arange(rows_per_block, dtype=jnp.int32)
    in_bounds = rows < layout.num_rows
    m = layout.num_heads
    batch = rows // (layout.num_queries * m)
    value_base = batch * (layout.num_values * m) + rows % m
    return rows, in_bounds, value_base


def _levels(layout: _Layout):
    """(level, first pixel, H, W) of every level, in ``spatial_shapes`` order."""
    starts = _level_starts(layout.spatial_shapes)
    for level, (h, w) in enumerate(layout.spatial_shapes):
        yield level, starts[level], h, w


def _load_column(ref, rows, col, mask, dtype):
    return plt.load(ref.at[rows, col], mask=mask, other=0).astype(dtype)


def _load_point(loc_ref, attn_ref, rows, in_bounds, column, h, w, dtype):
    """The attention weight (rows,) and bilinear taps of sampling point ``column`` of each row."""
    x = _load_column(loc_ref, rows, 2 * column, in_bounds, dtype)
    y = _load_column(loc_ref, rows, 2 * column + 1, in_bounds, dtype)
    attn = _load_column(attn_ref, rows, column, in_bounds, dtype)
    return attn, sample_taps(x, y, h, w)


def _load_corner(value_ref, taps, corner, in_bounds, start, h, w, value_base, layout, channels):
    """``(ok, row, v)`` of one bilinear corner: where it lies inside the level, its value row
    (0 where not ``ok``) and the (rows, width) values there (0 where not ``ok``)."""
    dy, dx = corner
    ok = in_bounds & taps.corner_valid(dy, dx, h, w)
    pixel = start + (taps.y0 + dy) * w + (taps.x0 + dx)
    row = jnp.where(ok, value_base + pixel * layout.num_heads, 0)
    v = plt.load(value_ref.at[row[:, None], channels[None, :]], mask=ok[:, None], other=0)
    return ok, row, v


def _forward_kernel(loc_ref, attn_ref, value_ref, out_ref, *, layout, blocks, dtype):
    rows, in_bounds, value_base = _row_block(layout, blocks.rows)
    channels = jnp.arange(layout.width, dtype=jnp.int32)
    acc = jnp.zeros((blocks.rows, layout.width), dtype)
    for level, start, h, w in _levels(layout):
        # Points of a level share its size, so they are a loop rather than unrolled code.
        def point(p, acc, level=level, start=start, h=h, w=w):
            column = level * layout.num_points + p
            attn, taps = _load_point(loc_ref, attn_ref, rows, in_bounds, column, h, w, dtype)
            for dy, dx in CORNERS:
                ok, _, v = _load_corner(
                    value_ref, taps, (dy, dx), in_bounds, start, h, w, value_base, layout, channels
                )
                weight = jnp.where(ok, attn * taps.corner_weight(dy, dx), 0)
                acc += weight[:, None] * v.astype(dtype)
            return acc

        acc = jax.lax.fori_loop(0, layout.num_points, point, acc)
    plt.store(
        out_ref.at[rows[:, None], channels[None, :]],
        acc.astype(out_ref.dtype),
        mask=in_bounds[:, None],
    )


def _scatter_add(ref, row, update, ok, interpret: bool) -> None:
    """``ref[row[i]] += update[i]`` for the rows where ``ok``, safe for repeated rows."""
    if not interpret:
        channels = jnp.arange(update.shape[1], dtype=jnp.int32)
        plt.atomic_add(ref, (row[:, None], channels[None, :]), update, mask=ok[:, None])
        return
    # The interpreter's vector atomic add keeps one of several equal indices; go row by row.
    update = jnp.where(ok[:, None], update, 0)

    def body(i, carry):
        plt.atomic_add(ref, (row[i], pl.ds(jnp.int32(0), update.shape[1])), update[i])
        return carry

    jax.lax.fori_loop(0, update.shape[0], body, 0)


def _backward_kernel(
    loc_ref,
    attn_ref,
    value_ref,
    grad_out_ref,
    _zeros_ref,
    grad_loc_ref,
    grad_attn_ref,
    grad_value_ref,
    *,
    layout,
    blocks,
    dtype,
    interpret,
):
    rows, in_bounds, value_base = _row_block(layout, blocks.rows)
    channels = jnp.arange(layout.width, dtype=jnp.int32)
    g = plt.load(
        grad_out_ref.at[rows[:, None], channels[None, :]], mask=in_bounds[:, None], other=0
    ).astype(dtype)
    for level, start, h, w in _levels(layout):

        def point(p, carry, level=level, start=start, h=h, w=w):
            column = level * layout.num_points + p
            attn, taps = _load_point(loc_ref, attn_ref, rows, in_bounds, column, h, w, dtype)
            grad_attn = jnp.zeros_like(attn)
            grad_x = jnp.zeros_like(attn)  # d out / d px, without the attention weight
            grad_y = jnp.zeros_like(attn)
            for dy, dx in CORNERS:
                ok, row, v = _load_corner(
                    value_ref, taps, (dy, dx), in_bounds, start, h, w, value_base, layout, channels
                )
                g_dot_v = jnp.where(ok, jnp.sum(g * v.astype(dtype), axis=1), 0)
                bilinear = taps.corner_weight(dy, dx)
                grad_attn += bilinear * g_dot_v
                wx = taps.fx if dx else 1 - taps.fx
                wy = taps.fy if dy else 1 - taps.fy
                grad_x += (wy if dx else -wy) * g_dot_v
                grad_y += (wx if dy else -wx) * g_dot_v
                update = jnp.where(ok, attn * bilinear, 0)[:, None] * g
                _scatter_add(
                    grad_value_ref, row, update.astype(grad_value_ref.dtype), ok, interpret
                )
            # d px / d x = W and d py / d y = H (grid_sample's un-normalisation).
            live = taps.inside & in_bounds
            grad_x = jnp.where(live, attn * w * grad_x, 0)
            grad_y = jnp.where(live, attn * h * grad_y, 0)
            for col, grad in ((2 * column, grad_x), (2 * column + 1, grad_y)):
                plt.store(
                    grad_loc_ref.at[rows, col], grad.astype(grad_loc_ref.dtype), mask=in_bounds
                )
            plt.store(
                grad_attn_ref.at[rows, column],
                grad_attn.astype(grad_attn_ref.dtype),
                mask=in_bounds,
            )
            return carry

        jax.lax.fori_loop(0, layout.num_points, point, 0)


def _layout(value: jax.Array, spatial_shapes: SpatialShapes, locations: jax.Array) -> _Layout:
    n, s, m, d = value.shape
    lq, _, _, p = locations.shape[1:5]
    return _Layout(
        spatial_shapes=spatial_shapes,
        num_values=s,
        num_queries=lq,
        num_heads=m,
        num_points=p,
        width=next_power_of_two(d),
        num_rows=n * lq * m,
    )


def _as_rows(value, locations, attention_weights, width: int):
    """Row views of the inputs (free reshapes; D padded only when not a power of two)."""
    n, s, m, d = value.shape
    values = value.reshape(n * s * m, d)
    if width != d:
        values = jnp.pad(values, ((0, 0), (0, width - d)))
    rows = attention_weights.shape[0] * attention_weights.shape[1] * m
    return values, locations.reshape(rows, -1), attention_weights.reshape(rows, -1)


def _any_spec():
    return pl.BlockSpec(memory_space=pl.ANY)


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
    layout = _layout(value, spatial_shapes, sampling_locations)
    d = value.shape[-1]
    blocks = blocks or gpu_block_sizes(layout.num_rows, d)
    dtype = compute_dtype(value.dtype, sampling_locations.dtype, attention_weights.dtype)
    values, locs, attn = _as_rows(value, sampling_locations, attention_weights, layout.width)
    kernel = functools.partial(_forward_kernel, layout=layout, blocks=blocks, dtype=dtype)
    out = pl.pallas_call(
        kernel,
        grid=(pl.cdiv(layout.num_rows, blocks.rows),),
        in_specs=[_any_spec()] * 3,
        out_specs=_any_spec(),
        out_shape=jax.ShapeDtypeStruct((layout.num_rows, layout.width), value.dtype),
        compiler_params=_compiler_params(blocks),
        interpret=interpret,
        name="ms_deform_attn_fwd",
    )(locs, attn, values)
    n, lq = sampling_locations.shape[:2]
    return out[:, :d].reshape(n, lq, -1)


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
    layout = _layout(value, spatial_shapes, sampling_locations)
    n, s, m, d = value.shape
    blocks = blocks or gpu_block_sizes(layout.num_rows, d)
    dtype = compute_dtype(value.dtype, sampling_locations.dtype, attention_weights.dtype)
    values, locs, attn = _as_rows(value, sampling_locations, attention_weights, layout.width)
    grad_rows = grad_output.reshape(layout.num_rows, d)
    if layout.width != d:
        grad_rows = jnp.pad(grad_rows, ((0, 0), (0, layout.width - d)))
    # The value gradient is accumulated (atomically) in the compute dtype, from zeros.
    zeros = jnp.zeros((n * s * m, layout.width), dtype)
    kernel = functools.partial(
        _backward_kernel, layout=layout, blocks=blocks, dtype=dtype, interpret=interpret
    )
    grad_locs, grad_attn, grad_values = pl.pallas_call(
        kernel,
        grid=(pl.cdiv(layout.num_rows, blocks.rows),),
        in_specs=[_any_spec()] * 5,
        out_specs=[_any_spec()] * 3,
        out_shape=[
            jax.ShapeDtypeStruct(locs.shape, sampling_locations.dtype),
            jax.ShapeDtypeStruct(attn.shape, attention_weights.dtype),
            jax.ShapeDtypeStruct(zeros.shape, dtype),
        ],
        input_output_aliases={4: 2},
        compiler_params=_compiler_params(blocks),
        interpret=interpret,
        name="ms_deform_attn_bwd",
    )(locs, attn, values, grad_rows, zeros)
    grad_value = grad_values[:, :d].reshape(value.shape).astype(value.dtype)
    return (
        grad_value,
        grad_locs.reshape(sampling_locations.shape),
        grad_attn.reshape(attention_weights.shape),
    )
