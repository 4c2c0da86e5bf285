"""Tests of the multi-scale deformable attention core (``kernels.ms_deform_attn``).

Three independent references pin the implementation down:

* the golden cases of the PyTorch original (``msda/`` fixtures, float64 output and gradients),
  checked through the same :func:`kernels.ms_deform_attn.check.check_case` the parity script uses;
* a deliberately slow numpy oracle written here with explicit loops over samples and corners, on
  the random sizes of :data:`kernels.ms_deform_attn.shapes.TEST_SHAPES`;
* closed-form values for hand-built cases (one-sided gradient at exact pixel centres, samples far
  outside the levels).

Tolerances are fractions of max|ref| (``RELATIVE_TOLERANCE``: 1e-5 in float32, 1e-10 in float64;
the reasons are in ``kernels/ms_deform_attn/check.py``). Half-precision results are compared with
the float32 result on the same (rounded) inputs: with float32 accumulation the only error left is
the final rounding, at most the unit roundoff of the format (2^-8 for bfloat16, 2^-11 for float16)
relative to each element.
"""

from __future__ import annotations

import functools
import os
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels.ms_deform_attn import available_implementations, ms_deform_attn
from kernels.ms_deform_attn.check import (
    CHECKED_TENSORS,
    check_case,
    list_cases,
    load_case,
    output_and_grads_fn,
    tolerance_for,
)
from kernels.ms_deform_attn.shapes import TEST_SHAPES, MSDAShape, make_inputs
from ov2seg_jax.parity.paths import fixtures_dir
from ov2seg_jax.parity.report import Tolerance, compare, format_table

_NO_FIXTURES = "<msda fixtures absent>"


def _fixture_case_names() -> list[str]:
    """Cases listed by the msda index at collection time (a placeholder that skips if absent)."""
    root = os.path.join(fixtures_dir(), "msda")
    if not os.path.isfile(os.path.join(root, "index.json")):
        return [_NO_FIXTURES]
    return list_cases(root)


@pytest.fixture(scope="session")
def msda_root(fixtures_root: str) -> str:
    root = os.path.join(fixtures_root, "msda")
    if not os.path.isfile(os.path.join(root, "index.json")):
        pytest.skip(f"msda fixtures not found at {root}")
    return root


# ----------------------------------------------------------------------------------------------
# The independent oracle.


def numpy_oracle(
    value: np.ndarray,
    spatial_shapes: tuple[tuple[int, int], ...],
    locations: np.ndarray,
    weights: np.ndarray,
    cotangent: np.ndarray,
) -> dict[str, np.ndarray]:
    """Output and gradients of sum(output * cotangent), one sample and one corner at a time.

    float64 throughout; a corner outside its level is skipped (zero padding).
    """
    value, locations, weights = (np.asarray(a, np.float64) for a in (value, locations, weights))
    n_batch, _, n_heads, dim = value.shape
    _, n_queries, _, n_levels, n_points, _ = locations.shape
    g = np.asarray(cotangent, np.float64).reshape(n_batch, n_queries, n_heads, dim)
    starts = np.concatenate([[0], np.cumsum([h * w for h, w in spatial_shapes])[:-1]])
    out = np.zeros((n_batch, n_queries, n_heads, dim))
    grad_value = np.zeros_like(value)
    grad_loc = np.zeros_like(locations)
    grad_weights = np.zeros_like(weights)
    for n, q, m, lvl, p in np.ndindex(n_batch, n_queries, n_heads, n_levels, n_points):
        h, w = spatial_shapes[lvl]
        x = locations[n, q, m, lvl, p, 0] * w - 0.5
        y = locations[n, q, m, lvl, p, 1] * h - 0.5
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        a = weights[n, q, m, lvl, p]
        for dy in (0, 1):
            for dx in (0, 1):
                xi, yi = x0 + dx, y0 + dy
                if not (0 <= xi < w and 0 <= yi < h):
                    continue
                wx = fx if dx else 1.0 - fx
                wy = fy if dy else 1.0 - fy
                row = starts[lvl] + yi * w + xi
                v = value[n, row, m]
                g_dot_v = float(g[n, q, m] @ v)
                out[n, q, m] += a * wx * wy * v
                grad_value[n, row, m] += a * wx * wy * g[n, q, m]
                grad_weights[n, q, m, lvl, p] += wx * wy * g_dot_v
                grad_loc[n, q, m, lvl, p, 0] += a * wy * (1.0 if dx else -1.0) * w * g_dot_v
                grad_loc[n, q, m, lvl, p, 1] += a * wx * (1.0 if dy else -1.0) * h * g_dot_v
    return {
        "output": out.reshape(n_batch, n_queries, n_heads * dim),
        "grad_value": grad_value,
        "grad_sampling_locations": grad_loc,
        "grad_attention_weights": grad_weights,
    }


@functools.cache
def _random_case(shape: MSDAShape) -> tuple[tuple[np.ndarray, ...], dict[str, np.ndarray]]:
    """float32 inputs + cotangent for ``shape`` and the oracle's answer (computed once)."""
    value, locations, weights = make_inputs(shape, seed=zlib.crc32(shape.name.encode()))
    rng = np.random.default_rng(1)
    cotangent = rng.standard_normal(shape.output_shape, dtype=np.float32)
    expected = numpy_oracle(value, shape.spatial_shapes, locations, weights, cotangent)
    return (value, locations, weights, cotangent), expected


def _output_and_grads(spatial_shapes, value, locations, weights, cotangent, *, jit: bool = True):
    """(output, grad_value, grad_locations, grad_weights) through the public API."""
    if jit:
        return output_and_grads_fn(tuple(spatial_shapes))(value, locations, weights, cotangent)
    out, vjp = jax.vjp(
        lambda v, loc, w: ms_deform_attn(v, spatial_shapes, loc, w), value, locations, weights
    )
    return (out, *vjp(jnp.asarray(cotangent, out.dtype)))


def _assert_rows_pass(rows) -> None:
    assert all(r.passed for r in rows), "\n" + format_table(rows)


_TENSORS = tuple(CHECKED_TENSORS)

# A tiny two-level size for the API tests.
_SMALL = MSDAShape("small", 1, 2, 2, 3, ((2, 3), (1, 2)), 2)


# ----------------------------------------------------------------------------------------------
# Golden cases of the original.


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("implementation", available_implementations())
@pytest.mark.parametrize("case_name", _fixture_case_names())
class TestFixtureCases:
    def test_output_and_gradients(
        self, msda_root: str, case_name: str, implementation: str, dtype: str
    ) -> None:
        case = load_case(msda_root, case_name)
        _assert_rows_pass(check_case(case, implementation, dtype))


# ----------------------------------------------------------------------------------------------
# Random sizes against the numpy oracle.


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", TEST_SHAPES, ids=[s.name for s in TEST_SHAPES])
def test_random_shapes_match_numpy_oracle(shape: MSDAShape, dtype: str) -> None:
    inputs, expected = _random_case(shape)
    with jax.enable_x64(dtype == "float64"):
        results = _output_and_grads(shape.spatial_shapes, *(jnp.asarray(a, dtype) for a in inputs))
        assert results[0].dtype == jnp.dtype(dtype)
        assert results[0].shape == shape.output_shape
        rows = [
            compare(
                f"{shape.name}/{dtype}/{key}",
                np.asarray(ours, np.float64),
                expected[key],
                tolerance_for(expected[key], dtype),
            )
            for key, ours in zip(_TENSORS, results, strict=True)
        ]
    _assert_rows_pass(rows)


def test_random_shapes_cover_the_intended_cases() -> None:
    """The oracle cases include batch > 1, one level, four levels and points outside [0, 1]."""
    assert any(s.batch > 1 for s in TEST_SHAPES)
    assert {1, 3, 4} <= {s.num_levels for s in TEST_SHAPES}
    assert any(
        s.spatial_shapes == ((2, 3), (4, 6), (8, 12))
        and s.num_heads == 8
        and s.head_dim == 32
        and s.num_points == 4
        for s in TEST_SHAPES
    )
    for shape in TEST_SHAPES:
        locations = make_inputs(shape)[1]
        assert np.mean((locations < 0) | (locations > 1)) > 0.05, shape.name


# ----------------------------------------------------------------------------------------------
# Hand-built cases with closed-form answers.


def _grid_value(height: int, width: int) -> np.ndarray:
    """(1, H*W, 1, 1) values with distinct, non-linear entries so every difference is visible."""
    return (1.0 + np.arange(height * width, dtype=np.float32) ** 1.5).reshape(1, -1, 1, 1)


def test_exact_pixel_centres_use_the_one_sided_gradient() -> None:
    """At integer pixel coordinates the location gradient is W*(v[k+1]-v[k]), zero-padded at the
    right/bottom edge, exactly as the floor-based bilinear rule of grid_sample."""
    height, width = 2, 4
    value = _grid_value(height, width)
    grid = value[0, :, 0, 0].reshape(height, width)
    padded = np.pad(grid, ((0, 1), (0, 1)))
    pixels = [(k, j) for j in range(height) for k in range(width)]
    locations = np.array([[(k + 0.5) / width, (j + 0.5) / height] for k, j in pixels], np.float32)
    locations = locations.reshape(1, len(pixels), 1, 1, 1, 2)
    weights = np.ones((1, len(pixels), 1, 1, 1), np.float32)
    cotangent = np.ones((1, len(pixels), 1), np.float32)
    out, _, grad_loc, _ = _output_and_grads(
        ((height, width),), value, locations, weights, cotangent
    )
    expected_out = np.array([grid[j, k] for k, j in pixels])
    expected_dx = np.array([width * (padded[j, k + 1] - padded[j, k]) for k, j in pixels])
    expected_dy = np.array([height * (padded[j + 1, k] - padded[j, k]) for k, j in pixels])
    np.testing.assert_array_equal(np.asarray(out).ravel(), expected_out)
    np.testing.assert_allclose(np.asarray(grad_loc)[..., 0].ravel(), expected_dx, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grad_loc)[..., 1].ravel(), expected_dy, rtol=1e-6)


def test_far_outside_samples_give_zero_and_finite_gradients() -> None:
    height, width = 3, 5
    value = _grid_value(height, width)
    far = [
        (-1e30, 0.5),
        (1e30, 0.5),
        (0.5, -1e6),
        (0.5, 1e6),
        (-0.2, 0.5),
        (1.2, 0.5),
        (np.inf, 0.5),
        (-np.inf, -np.inf),
    ]
    locations = np.array(far, np.float32).reshape(1, len(far), 1, 1, 1, 2)
    weights = np.ones((1, len(far), 1, 1, 1), np.float32)
    cotangent = np.ones((1, len(far), 1), np.float32)
    results = _output_and_grads(((height, width),), value, locations, weights, cotangent)
    for result in results:
        np.testing.assert_array_equal(np.asarray(result), 0.0)


# ----------------------------------------------------------------------------------------------
# Precision, transformations and the public API.


@pytest.mark.parametrize("dtype,unit_roundoff", [("bfloat16", 2.0**-8), ("float16", 2.0**-11)])
def test_half_precision_accumulates_in_float32(dtype: str, unit_roundoff: float) -> None:
    """Half-precision in, half-precision out, but every element within one final rounding of the
    float32 result on the same inputs (a half-precision accumulation misses by far more)."""
    shape = TEST_SHAPES[0]
    inputs, _ = _random_case(shape)
    half = [jnp.asarray(a, dtype) for a in inputs]
    ours = _output_and_grads(shape.spatial_shapes, *half)
    full = _output_and_grads(shape.spatial_shapes, *(a.astype(jnp.float32) for a in half))
    rows = []
    for key, mine, ref in zip(_TENSORS, ours, full, strict=True):
        assert mine.dtype == jnp.dtype(dtype), key
        ref = np.asarray(ref, np.float64)
        tol = tolerance_for(ref, "float32")
        rows.append(
            compare(
                f"{dtype}/{key}",
                np.asarray(mine.astype(jnp.float32)),
                ref,
                Tolerance(atol=tol.atol, rtol=unit_roundoff),
            )
        )
    _assert_rows_pass(rows)


def test_mixed_dtypes_return_value_dtype() -> None:
    shape = TEST_SHAPES[-1]
    value, locations, weights = make_inputs(shape)
    value = jnp.asarray(value, jnp.bfloat16)
    core = jax.jit(functools.partial(ms_deform_attn, spatial_shapes=shape.spatial_shapes))
    out = core(value, sampling_locations=locations, attention_weights=weights)
    assert out.dtype == jnp.bfloat16
    ref = core(value.astype(jnp.float32), sampling_locations=locations, attention_weights=weights)
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, rtol=2.0**-8, atol=1e-6)


def test_jit_and_eager_agree() -> None:
    shape = _SMALL
    value, locations, weights = make_inputs(shape)
    cotangent = np.random.default_rng(0).standard_normal(shape.output_shape).astype(np.float32)
    inputs = (value, locations, weights, cotangent)
    eager = _output_and_grads(shape.spatial_shapes, *inputs, jit=False)
    jitted = _output_and_grads(shape.spatial_shapes, *inputs, jit=True)
    for key, a, b in zip(_TENSORS, eager, jitted, strict=True):
        b = np.asarray(b)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * np.abs(b).max(), err_msg=key)


def test_vmap_matches_a_loop_and_spatial_shapes_may_be_an_array() -> None:
    shape = TEST_SHAPES[-1]
    stacked = [
        np.stack(arrays)
        for arrays in zip(*(make_inputs(shape, seed) for seed in (3, 4)), strict=True)
    ]
    levels = np.asarray(shape.spatial_shapes, np.int64)
    batched = jax.jit(jax.vmap(lambda v, loc, w: ms_deform_attn(v, levels, loc, w)))(*stacked)
    single = jax.jit(lambda v, loc, w: ms_deform_attn(v, shape.spatial_shapes, loc, w))
    for i in range(2):
        expected = single(stacked[0][i], stacked[1][i], stacked[2][i])
        np.testing.assert_allclose(batched[i], expected, rtol=0, atol=1e-6)


def test_implementation_names() -> None:
    assert available_implementations() == ("xla",)
    value, locations, weights = make_inputs(_SMALL)
    levels = _SMALL.spatial_shapes
    auto = ms_deform_attn(value, levels, locations, weights, implementation="auto")
    xla = ms_deform_attn(value, levels, locations, weights, implementation="xla")
    np.testing.assert_array_equal(auto, xla)


def _bad_call(**changes):
    """Keyword arguments of a valid call on ``_SMALL`` with some replaced."""
    value, locations, weights = make_inputs(_SMALL)
    kwargs = dict(
        value=value,
        spatial_shapes=_SMALL.spatial_shapes,
        sampling_locations=locations,
        attention_weights=weights,
    )
    kwargs.update(changes)
    return kwargs


_V, _LOC, _W = make_inputs(_SMALL)


@pytest.mark.parametrize(
    "kwargs,error,pattern",
    [
        (_bad_call(spatial_shapes=((2, 3), (2, 2))), ValueError, r"spatial_shapes.*S=8"),
        (_bad_call(spatial_shapes=((2, 3, 1),)), ValueError, r"spatial_shapes.*\(L, 2\)"),
        (_bad_call(spatial_shapes=()), ValueError, r"spatial_shapes"),
        (
            _bad_call(spatial_shapes=((2, 3), (0, 2), (1, 2))),
            ValueError,
            r"spatial_shapes.*positive",
        ),
        (
            _bad_call(spatial_shapes=((2.0, 3.0), (1.0, 2.0))),
            TypeError,
            r"spatial_shapes.*integers",
        ),
        (_bad_call(value=_V[0]), ValueError, r"value.*\(N, S, M, D\).*\(8, 2, 3\)"),
        (_bad_call(value=_V.astype(np.int32)), TypeError, r"value.*floating.*int32"),
        (
            _bad_call(sampling_locations=_LOC[..., :1]),
            ValueError,
            r"sampling_locations.*2 \(x, y\)",
        ),
        (
            _bad_call(sampling_locations=_LOC[..., 0, :]),
            ValueError,
            r"sampling_locations.*\(N, Lq, M, L, P, 2\)",
        ),
        (
            _bad_call(sampling_locations=np.concatenate([_LOC, _LOC])),
            ValueError,
            r"sampling_locations.*\(2, 2, 2, 2, 2, 2\).*N=1",
        ),
        (
            _bad_call(sampling_locations=_LOC[:, :, :1], attention_weights=_W[:, :, :1]),
            ValueError,
            r"sampling_locations.*M=2",
        ),
        (
            _bad_call(sampling_locations=_LOC[:, :, :, :1], attention_weights=_W[:, :, :, :1]),
            ValueError,
            r"sampling_locations.*L=2",
        ),
        (
            _bad_call(sampling_locations=_LOC.astype(np.int64)),
            TypeError,
            r"sampling_locations.*floating",
        ),
        (
            _bad_call(attention_weights=_W[..., :1]),
            ValueError,
            r"attention_weights.*\(1, 2, 2, 2, 1\)",
        ),
        (_bad_call(attention_weights=_W[0]), ValueError, r"attention_weights.*\(N, Lq, M, L, P\)"),
        (_bad_call(attention_weights=_W > 0.5), TypeError, r"attention_weights.*floating.*bool"),
    ],
    ids=[
        "sum_hw",
        "shapes_rank",
        "shapes_empty",
        "shapes_nonpositive",
        "shapes_float",
        "value_rank",
        "value_int",
        "loc_last_dim",
        "loc_rank",
        "loc_batch",
        "loc_heads",
        "loc_levels",
        "loc_int",
        "weights_points",
        "weights_rank",
        "weights_bool",
    ],
)
def test_bad_inputs_name_the_argument(kwargs, error, pattern) -> None:
    with pytest.raises(error, match=pattern):
        ms_deform_attn(**kwargs)


@pytest.mark.parametrize(
    "name,pattern",
    [
        ("pallas_gpu", r"implementation='pallas_gpu' is not available.*'auto', 'xla'"),
        ("pallas_tpu", r"implementation='pallas_tpu' is not available.*'auto', 'xla'"),
        ("cuda", r"unknown implementation='cuda'.*'auto', 'xla'"),
    ],
)
def test_unavailable_implementations_are_rejected(name: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        ms_deform_attn(**_bad_call(), implementation=name)


def test_traced_spatial_shapes_are_rejected() -> None:
    value, locations, weights = make_inputs(_SMALL)
    levels = jnp.asarray(_SMALL.spatial_shapes)
    with pytest.raises(TypeError, match=r"spatial_shapes must be static"):
        jax.jit(lambda s: ms_deform_attn(value, s, locations, weights))(levels)
