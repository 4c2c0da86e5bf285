"""Tests of the multi-scale deformable attention core (``kernels.ms_deform_attn``).

Every implementation available on the machine runs the same cases (:class:`TestImplementation`):
the pure-JAX reference ``"xla"`` and the Pallas kernels, which on CPU run in interpret mode (TPU
interpret mode for ``"pallas_tpu"``). Interpret mode compiles slowly, so the Pallas cases stay
small; the full-size OV2Seg comparison runs only on a GPU or TPU. Three independent references pin
the implementations down:

* the golden cases of the PyTorch original (``msda/`` fixtures, float64 output and gradients),
  checked through the same :func:`kernels.ms_deform_attn.check.check_case` the parity script uses;
* a deliberately slow numpy oracle written here with explicit loops over samples and corners, on
  the random sizes of :data:`kernels.ms_deform_attn.shapes.TEST_SHAPES`;
* closed-form values for hand-built cases (one-sided gradient at exact pixel centres, samples far
  outside the levels).

Tolerances are fractions of max|ref| (``RELATIVE_TOLERANCE``: 1e-5 in float32, 1e-10 in float64;
the reasons are in ``kernels/ms_deform_attn/check.py``). Half-precision results are compared with
the oracle on the same (rounded) inputs: with float32 accumulation the only error left beyond the
float32 one is the final rounding, at most the unit roundoff of the format (2^-8 for bfloat16,
2^-11 for float16) relative to each element.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import sys
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import native_library
from kernels.ms_deform_attn import (
    BlockSizes,
    available_implementations,
    ms_deform_attn,
    ms_deform_attn_pallas,
)
from kernels.ms_deform_attn import cpu as cpu_native
from kernels.ms_deform_attn.api import (
    VALIDATED_DEVICE_KINDS,
    auto_implementation,
    resolve_implementation,
)
from kernels.ms_deform_attn.check import (
    CHECKED_TENSORS,
    check_case,
    list_cases,
    load_case,
    output_and_grads_fn,
    tolerance_for,
)
from kernels.ms_deform_attn.heuristics import gpu_block_sizes, tpu_block_sizes
from kernels.ms_deform_attn.shapes import TEST_SHAPES, MSDAShape, encoder_shape, make_inputs
from kernels.report import Tolerance, compare, format_table
from ov2seg_jax.parity.paths import fixtures_dir

_NO_FIXTURES = "<msda fixtures absent>"

# Every implementation that runs here; on CPU the Pallas kernels run in interpret mode.
IMPLEMENTATIONS = available_implementations()
PALLAS = tuple(name for name in IMPLEMENTATIONS if name.startswith("pallas"))
NATIVE = tuple(name for name in IMPLEMENTATIONS if name == "cpu")

# (implementation, compute dtype) pairs of the shared test class. float64 runs on the reference
# (the model's float64 path); pallas_gpu's float64 support is checked on one case below, and TPUs
# have no float64.
IMPLEMENTATION_DTYPES = [
    (name, dtype) for name in ("xla", *NATIVE) for dtype in ("float32", "float64")
] + [(name, "float32") for name in PALLAS]


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


def _output_and_grads(
    spatial_shapes, value, locations, weights, cotangent, *, implementation="auto", jit=True
):
    """(output, grad_value, grad_locations, grad_weights) through the public API."""
    if jit:
        fn = output_and_grads_fn(tuple(spatial_shapes), implementation)
        return fn(value, locations, weights, cotangent)
    out, vjp = jax.vjp(
        lambda v, loc, w: ms_deform_attn(v, spatial_shapes, loc, w, implementation=implementation),
        value,
        locations,
        weights,
    )
    return (out, *vjp(jnp.asarray(cotangent, out.dtype)))


def _compare_all(label: str, results, expected: dict[str, np.ndarray], dtype: str, rtol=0.0):
    """Comparison rows of the four results against ``expected`` (tolerances by dtype)."""
    return [
        compare(
            f"{label}/{key}",
            np.asarray(jnp.asarray(ours, jnp.float32) if dtype in _HALF else ours, np.float64),
            expected[key],
            Tolerance(atol=tolerance_for(expected[key], _ACCUMULATION[dtype]).atol, rtol=rtol),
        )
        for key, ours in zip(_TENSORS, results, strict=True)
    ]


def _assert_rows_pass(rows) -> None:
    assert all(r.passed for r in rows), "\n" + format_table(rows)


_TENSORS = tuple(CHECKED_TENSORS)
_HALF = {"bfloat16": 2.0**-8, "float16": 2.0**-11}  # unit roundoff of the half formats
_ACCUMULATION = {
    "float32": "float32",
    "float64": "float64",
    "bfloat16": "float32",
    "float16": "float32",
}
_SHAPES = {shape.name: shape for shape in TEST_SHAPES}

# A tiny two-level size for the API tests.
_SMALL = MSDAShape("small", 1, 2, 2, 3, ((2, 3), (1, 2)), 2)


def test_random_shapes_cover_the_intended_cases() -> None:
    """The oracle cases include OV2Seg's 480x864 levels, batch > 1, one level, four levels and
    points outside [0, 1]."""
    assert any(s.batch > 1 for s in TEST_SHAPES)
    assert {1, 3, 4} <= {s.num_levels for s in TEST_SHAPES}
    assert any(
        s.spatial_shapes == ((15, 27), (30, 54), (60, 108))
        and s.num_heads == 8
        and s.head_dim == 32
        and s.num_points == 4
        for s in TEST_SHAPES
    )
    for shape in TEST_SHAPES:
        locations = make_inputs(shape)[1]
        assert np.mean((locations < 0) | (locations > 1)) > 0.05, shape.name


# ----------------------------------------------------------------------------------------------
# The same cases through every implementation.


@pytest.mark.parametrize("implementation,dtype", IMPLEMENTATION_DTYPES)
class TestImplementation:
    """Output and all three gradients of every implementation against float64 references."""

    @pytest.mark.parametrize("case_name", _fixture_case_names())
    def test_fixture_case(
        self, msda_root: str, case_name: str, implementation: str, dtype: str
    ) -> None:
        case = load_case(msda_root, case_name)
        _assert_rows_pass(check_case(case, implementation, dtype))

    @pytest.mark.parametrize("shape", TEST_SHAPES, ids=[s.name for s in TEST_SHAPES])
    def test_random_shape_matches_numpy_oracle(
        self, shape: MSDAShape, implementation: str, dtype: str
    ) -> None:
        inputs, expected = _random_case(shape)
        with jax.enable_x64(dtype == "float64"):
            args = (jnp.asarray(a, dtype) for a in inputs)
            results = _output_and_grads(shape.spatial_shapes, *args, implementation=implementation)
            assert results[0].dtype == jnp.dtype(dtype)
            assert results[0].shape == shape.output_shape
            rows = _compare_all(f"{shape.name}/{implementation}/{dtype}", results, expected, dtype)
        _assert_rows_pass(rows)

    def test_closed_form_cases(self, implementation: str, dtype: str) -> None:
        """Exact pixel centres give the pixel's value and the one-sided (floor-based) location
        gradient W*(v[k+1]-v[k]), zero-padded at the right/bottom edge; samples far outside
        (including infinities) give exact zeros everywhere, never NaN."""
        height, width = 2, 4
        grid = 1.0 + np.arange(height * width, dtype=np.float64).reshape(height, width) ** 1.5
        padded = np.pad(grid, ((0, 1), (0, 1)))
        pixels = [(k, j) for j in range(height) for k in range(width)]
        centres = [((k + 0.5) / width, (j + 0.5) / height) for k, j in pixels]
        far = [(-1e30, 0.5), (1e30, 0.5), (0.5, -1e6), (0.5, 1e6), (-0.2, 0.5), (1.2, 0.5)]
        far += [(np.inf, 0.5), (-np.inf, -np.inf)]
        points = centres + far
        with jax.enable_x64(dtype == "float64"):
            value = jnp.asarray(grid.reshape(1, -1, 1, 1), dtype)
            locations = jnp.asarray(np.array(points).reshape(1, len(points), 1, 1, 1, 2), dtype)
            weights = jnp.ones((1, len(points), 1, 1, 1), dtype)
            cotangent = jnp.ones((1, len(points), 1), dtype)
            results = _output_and_grads(
                ((height, width),),
                value,
                locations,
                weights,
                cotangent,
                implementation=implementation,
            )
            out, grad_value, grad_loc, grad_weights = (np.asarray(r, np.float64) for r in results)
        n = len(centres)
        expected_out = np.array([grid[j, k] for k, j in pixels])
        expected_dx = np.array([width * (padded[j, k + 1] - padded[j, k]) for k, j in pixels])
        expected_dy = np.array([height * (padded[j + 1, k] - padded[j, k]) for k, j in pixels])
        rtol = 1e-6 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(out.ravel()[:n], expected_out, rtol=rtol)
        np.testing.assert_allclose(grad_loc[0, :n, 0, 0, 0, 0], expected_dx, rtol=rtol)
        np.testing.assert_allclose(grad_loc[0, :n, 0, 0, 0, 1], expected_dy, rtol=rtol)
        # Each centre sample puts its whole cotangent on its own pixel.
        np.testing.assert_allclose(grad_value.ravel(), np.ones(height * width), rtol=rtol)
        np.testing.assert_allclose(grad_weights.ravel()[:n], expected_out, rtol=rtol)
        for result in (out.ravel()[n:], grad_loc[0, n:], grad_weights.ravel()[n:]):
            np.testing.assert_array_equal(result, 0.0)


@pytest.mark.parametrize(
    "implementation,dtype",
    [(name, "bfloat16") for name in IMPLEMENTATIONS] + [("xla", "float16")],
)
def test_half_precision_accumulates_in_float32(implementation: str, dtype: str) -> None:
    """Half-precision in, half-precision out, but every element within one final rounding of the
    exact result on the same (rounded) inputs, plus the float32 tolerance (a half-precision
    accumulation misses by far more)."""
    shape = _SHAPES["single_level_outside"]
    inputs, _ = _random_case(shape)
    half = [jnp.asarray(a, dtype) for a in inputs]
    expected = numpy_oracle(
        *(np.asarray(a.astype(jnp.float32)) for a in half[:1]),
        shape.spatial_shapes,
        *(np.asarray(a.astype(jnp.float32)) for a in half[1:]),
    )
    results = _output_and_grads(shape.spatial_shapes, *half, implementation=implementation)
    for key, result in zip(_TENSORS, results, strict=True):
        assert result.dtype == jnp.dtype(dtype), key
    _assert_rows_pass(
        _compare_all(f"{implementation}/{dtype}", results, expected, dtype, rtol=_HALF[dtype])
    )


@pytest.mark.skipif("pallas_gpu" not in PALLAS, reason="pallas_gpu does not run here")
def test_pallas_gpu_float64(msda_root: str) -> None:
    """The GPU kernel also computes in float64 (to the float64 tolerance)."""
    _assert_rows_pass(check_case(load_case(msda_root, "borders_exact"), "pallas_gpu", "float64"))


# Lq=20 queries and a 12x16 level (192 pixels): two row programs on GPU, three query blocks and two
# one-hot chunks on TPU with the blocks below.
_BLOCKS_SHAPE = MSDAShape("small_blocks", 1, 20, 1, 4, ((12, 16), (3, 5)), 2)


@pytest.mark.parametrize("kernel", PALLAS)
def test_small_blocks_split_queries_and_pixels(kernel: str) -> None:
    """Tiles much smaller than the problem: several programs per (batch, head), several one-hot
    chunks per level on TPU, and a value gradient accumulated across query blocks."""
    shape = _BLOCKS_SHAPE
    inputs, expected = _random_case(shape)
    value, locations, weights, cotangent = (jnp.asarray(a) for a in inputs)
    blocks = BlockSizes(rows=16, queries=8, pixels=128)

    def core(v, loc, w):
        return ms_deform_attn_pallas(v, shape.spatial_shapes, loc, w, kernel=kernel, blocks=blocks)

    out, vjp = jax.vjp(core, value, locations, weights)
    results = (out, *vjp(cotangent))
    _assert_rows_pass(_compare_all(f"{kernel}/small_blocks", results, expected, "float32"))


# Kernel -> (jax lowering platform of its hardware, the custom call its compiled form becomes).
_HARDWARE_LOWERING = {
    "pallas_gpu": ("cuda", "__gpu$xla.gpu.triton"),
    "pallas_tpu": ("tpu", "tpu_custom_call"),
}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("kernel", PALLAS)
def test_kernels_lower_for_their_hardware(kernel: str, dtype: str) -> None:
    """Forward and backward lower to Triton (GPU) or Mosaic (TPU) without the hardware: the
    compiled code path (e.g. the GPU's vector atomic add, which interpret mode replaces) gets
    through Pallas' lowering rules, and the result holds one kernel call per direction."""
    platform, call = _HARDWARE_LOWERING[kernel]
    shape = _BLOCKS_SHAPE
    inputs, _ = _random_case(shape)
    args = [jnp.asarray(a, dtype) for a in inputs]

    def run(value, locations, weights, cotangent):
        def core(v, loc, w):
            return ms_deform_attn_pallas(
                v, shape.spatial_shapes, loc, w, kernel=kernel, interpret=False
            )

        out, vjp = jax.vjp(core, value, locations, weights)
        return out, vjp(cotangent)

    text = jax.jit(run).trace(*args).lower(lowering_platforms=(platform,)).as_text()
    assert text.count(f"custom_call @{call}") == 2, text[:2000]


@pytest.mark.parametrize("kernel", PALLAS)
def test_reference_gradients_escape_hatch(kernel: str) -> None:
    """gradients="reference": the kernel's forward with the reference's autodiff gradients."""
    shape = _SHAPES["single_level_outside"]
    inputs, expected = _random_case(shape)
    value, locations, weights, cotangent = (jnp.asarray(a) for a in inputs)

    def core(v, loc, w):
        return ms_deform_attn_pallas(
            v, shape.spatial_shapes, loc, w, kernel=kernel, gradients="reference"
        )

    out, vjp = jax.vjp(core, value, locations, weights)
    results = (out, *vjp(cotangent))
    _assert_rows_pass(_compare_all(f"{kernel}/reference_gradients", results, expected, "float32"))


@pytest.mark.gpu
@pytest.mark.skipif(
    jax.default_backend() not in ("gpu", "tpu"), reason="full-size OV2Seg shapes need a GPU or TPU"
)
def test_full_size_encoder_matches_reference() -> None:
    """OV2Seg's inference size (480x864, every token a query) through the backend's kernel, output
    and gradients against the reference in float32."""
    shape = encoder_shape("ov2seg_encoder_480x864_all_queries", 480, 864, batch=2)
    value, locations, weights = make_inputs(shape)
    cotangent = np.random.default_rng(0).standard_normal(shape.output_shape, dtype=np.float32)
    kernel = resolve_implementation("auto", jnp.float32)
    ours = _output_and_grads(
        shape.spatial_shapes, value, locations, weights, cotangent, implementation=kernel
    )
    ref = _output_and_grads(
        shape.spatial_shapes, value, locations, weights, cotangent, implementation="xla"
    )
    expected = {key: np.asarray(r, np.float64) for key, r in zip(_TENSORS, ref, strict=True)}
    _assert_rows_pass(_compare_all(f"{kernel}/full_size", ours, expected, "float32"))


# ----------------------------------------------------------------------------------------------
# Transformations and the public API.


def test_mixed_dtypes_return_value_dtype() -> None:
    shape = _SHAPES["four_levels_batch2"]
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
    shape = _SHAPES["four_levels_batch2"]
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


def test_native_cpu_library_is_built() -> None:
    """The package install compiles the native CPU core; a missing library is a build failure."""
    assert cpu_native.is_available(), (
        f"native kernels' library missing under {native_library.NATIVE_DIR}: "
        + cpu_native.BUILD_HINT
    )


# OV2Seg's levels with enough queries to fill the vector loops, and a head width (8) that the
# loops read at run time instead of as a constant.
_PATH_SHAPES = (
    encoder_shape("ov2seg_levels_64_queries", 480, 864, batch=1, num_queries=64),
    _SHAPES["four_levels_batch2"],
)


@pytest.mark.parametrize("path", ["avx2", "avx512"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", _PATH_SHAPES, ids=[s.name for s in _PATH_SHAPES])
def test_native_code_paths_agree_bit_for_bit(shape: MSDAShape, dtype: str, path: str) -> None:
    """Each vector build of the native loops gives the portable build's bits, forward and all
    three gradients (one output channel per lane, the same products in the same order)."""
    if path not in native_library.cpu_paths():
        pytest.skip(f"this CPU does not run the {path} path")
    value, locations, weights = (a.astype(dtype) for a in make_inputs(shape, seed=5))
    cotangent = np.random.default_rng(6).standard_normal(shape.output_shape).astype(dtype)

    def run(which: str):
        def core(v, loc, w):
            return cpu_native.ms_deform_attn_cpu(v, shape.spatial_shapes, loc, w, path=which)

        with jax.enable_x64(dtype == "float64"):
            out, vjp = jax.vjp(core, *map(jnp.asarray, (value, locations, weights)))
            return [np.asarray(x) for x in (out, *vjp(jnp.asarray(cotangent)))]

    for name, got, want in zip(("output", *_TENSORS[1:]), run(path), run("portable"), strict=True):
        assert got.dtype == np.dtype(dtype), name
        np.testing.assert_array_equal(got, want, err_msg=f"{path} vs portable: {name}")


def test_unknown_native_path_is_rejected() -> None:
    """A path name that is not one is a ValueError naming the choices."""
    value, locations, weights = make_inputs(_SMALL)
    with pytest.raises(ValueError, match="unknown native code path 'sse9'"):
        cpu_native.ms_deform_attn_cpu(value, _SMALL.spatial_shapes, locations, weights, path="sse9")


def test_implementation_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU runs every implementation (Pallas in interpret mode) and "auto" is the native core
    there; on a GPU/TPU "auto" is a kernel only on a device kind where it was validated, else the
    reference, and always the reference for float64."""
    assert available_implementations("cpu") == ("xla", "cpu", "pallas_gpu", "pallas_tpu")
    assert available_implementations("gpu") == ("xla", "pallas_gpu")
    assert available_implementations("tpu") == ("xla", "pallas_tpu")
    if jax.default_backend() == "cpu":
        value, locations, weights = make_inputs(_SMALL)
        levels = _SMALL.spatial_shapes
        auto = ms_deform_attn(value, levels, locations, weights, implementation="auto")
        native = ms_deform_attn(value, levels, locations, weights, implementation="cpu")
        np.testing.assert_array_equal(auto, native)
        assert resolve_implementation("auto", jnp.float32) == "cpu"
        assert resolve_implementation("auto", jnp.float64) == "cpu"
        monkeypatch.setattr(cpu_native, "is_available", lambda: False)
        assert resolve_implementation("auto", jnp.float32) == "xla"
        with pytest.raises(ValueError, match=r"implementation='cpu' needs the native library"):
            resolve_implementation("cpu")
    # No device kind is validated yet: the reference everywhere until a device run fills the table.
    assert VALIDATED_DEVICE_KINDS == {}
    assert auto_implementation("gpu", "NVIDIA H200") == "xla"
    assert auto_implementation("tpu", "TPU v5 lite") == "xla"
    monkeypatch.setitem(VALIDATED_DEVICE_KINDS, "NVIDIA H200", "pallas_gpu")
    monkeypatch.setitem(VALIDATED_DEVICE_KINDS, "TPU v5 lite", "pallas_tpu")
    assert auto_implementation("gpu", "NVIDIA H200") == "pallas_gpu"
    assert auto_implementation("gpu", "NVIDIA A100") == "xla"
    assert auto_implementation("tpu", "TPU v5 lite") == "pallas_tpu"
    assert auto_implementation("gpu", "TPU v5 lite") == "xla"  # a kernel for another backend
    for backend, kind, kernel in (
        ("gpu", "NVIDIA H200", "pallas_gpu"),
        ("tpu", "TPU v5 lite", "pallas_tpu"),
    ):
        monkeypatch.setattr(jax, "default_backend", lambda backend=backend: backend)
        monkeypatch.setattr(
            jax, "devices", lambda kind=kind: [type("Device", (), {"device_kind": kind})()]
        )
        assert resolve_implementation("auto", jnp.float32) == kernel
        assert resolve_implementation("auto", jnp.bfloat16) == kernel
        assert resolve_implementation("auto", jnp.float64) == "xla"


@pytest.mark.parametrize(
    "backend,name,pattern",
    [
        (
            "gpu",
            "pallas_tpu",
            r"'pallas_tpu' does not run on the 'gpu' backend.*'xla', 'pallas_gpu'",
        ),
        (
            "tpu",
            "pallas_gpu",
            r"'pallas_gpu' does not run on the 'tpu' backend.*'xla', 'pallas_tpu'",
        ),
        ("cpu", "cuda", r"unknown implementation='cuda'.*'auto', 'xla'"),
    ],
)
def test_unavailable_implementations_are_rejected(
    monkeypatch: pytest.MonkeyPatch, backend: str, name: str, pattern: str
) -> None:
    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    with pytest.raises(ValueError, match=pattern):
        resolve_implementation(name)


def test_pallas_tpu_rejects_float64() -> None:
    value, locations, weights = make_inputs(_SMALL)
    with jax.enable_x64(True):
        with pytest.raises(ValueError, match=r"pallas_tpu.*float64.*'xla'"):
            ms_deform_attn(
                jnp.asarray(value, jnp.float64),
                _SMALL.spatial_shapes,
                locations,
                weights,
                implementation="pallas_tpu",
            )


def test_pallas_options_are_checked() -> None:
    value, locations, weights = make_inputs(_SMALL)
    with pytest.raises(ValueError, match=r"unknown kernel='triton'"):
        ms_deform_attn_pallas(value, _SMALL.spatial_shapes, locations, weights, kernel="triton")
    with pytest.raises(ValueError, match=r"gradients='autodiff'"):
        ms_deform_attn_pallas(
            value,
            _SMALL.spatial_shapes,
            locations,
            weights,
            kernel="pallas_gpu",
            gradients="autodiff",
        )


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(rows=48), r"BlockSizes.rows.*power of two.*48"),
        (dict(queries=12), r"BlockSizes.queries.*multiple of 8.*12"),
        (dict(pixels=100), r"BlockSizes.pixels.*multiple of 128.*100"),
    ],
)
def test_block_sizes_are_validated(kwargs, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        BlockSizes(**kwargs)


def test_block_size_heuristics() -> None:
    """GPU: 64 rows of D=32 (2048 accumulator elements), fewer for tiny problems. TPU: one MXU
    pass of 128 queries unless fewer, one-hot chunks no wider than the largest level."""
    assert gpu_block_sizes(10 * 8505 * 8, 32).rows == 64
    assert gpu_block_sizes(10, 32).rows == 16
    assert gpu_block_sizes(10**6, 128).num_warps == 8
    levels = ((15, 27), (30, 54), (60, 108))
    assert tpu_block_sizes(8505, levels) == BlockSizes(queries=128, pixels=2048)
    assert tpu_block_sizes(5, ((3, 5),)) == BlockSizes(queries=8, pixels=128)


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


def test_traced_spatial_shapes_are_rejected() -> None:
    value, locations, weights = make_inputs(_SMALL)
    levels = jnp.asarray(_SMALL.spatial_shapes)
    with pytest.raises(TypeError, match=r"spatial_shapes must be static"):
        jax.jit(lambda s: ms_deform_attn(value, s, locations, weights))(levels)


# ----------------------------------------------------------------------------------------------
# The parity script on other folders of the same layout.


def _load_script(name: str):
    path = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


def test_check_script_exit_status(msda_root: str, tmp_path, capsys) -> None:
    """0 on a copied case folder, 1 once a stored gradient is perturbed, 2 on a non-case folder."""
    script = _load_script("check_msda")
    name = "borders_exact"
    good = tmp_path / "good"
    good.mkdir()
    (good / "index.json").write_text(json.dumps({"cases": [{"case": name}]}))
    shutil.copy(os.path.join(msda_root, f"{name}.npz"), good / f"{name}.npz")
    argv = ["--implementation", "xla", "--dtype", "float32"]
    assert script.main([str(good), *argv]) == 0
    assert "4 of 4 rows within tolerance" in capsys.readouterr().out

    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    with np.load(good / f"{name}.npz") as data:
        arrays = dict(data)
    arrays["grad_sampling_locations"].flat[3] += (
        1e-3 * np.abs(arrays["grad_sampling_locations"]).max()
    )
    np.savez(bad / f"{name}.npz", **arrays)
    assert script.main([str(bad), *argv]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert script.main([str(tmp_path), *argv]) == 2


def test_bench_script_bytes_and_bandwidth() -> None:
    """The floor counts inputs read and results written once; device names map to bandwidth."""
    bench = _load_script("bench_msda")
    shape = _SMALL  # value 1*8*2*3, locations 1*2*2*2*2*2, weights 1*2*2*2*2, output 1*2*6
    value, locations, weights, output = 48, 32, 16, 12
    assert bench.bytes_moved(shape, "float32", "fwd") == 4 * (value + locations + weights + output)
    assert bench.bytes_moved(shape, "bfloat16", "fwd+bwd") == 2 * (
        2 * (value + locations + weights + output) + value + locations + weights
    )
    assert bench.device_bandwidth("NVIDIA H100 80GB HBM3") == 3350.0
    assert bench.device_bandwidth("NVIDIA H100 PCIe") == 2000.0
    assert bench.device_bandwidth("NVIDIA H200") == 4800.0
    assert bench.device_bandwidth("cpu") is None
