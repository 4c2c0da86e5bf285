"""The window attention core: the native CPU implementation against the XLA reference.

Values of the reference itself are checked against the original in tests/models/test_swin.py
(the Swin-B stage-1 unit, both implementations, and the whole backbone).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import native_library
from kernels.window_attention import (
    available_implementations,
    resolve_implementation,
    window_attention,
    window_attention_reference,
)
from kernels.window_attention import cpu as cpu_native
from ov2seg_jax.models.backbones.swin import shift_window_mask

# (images, padded grid, window, heads, head width). Covers Swin-B's stage-1 and stage-3 head
# layouts, a 7x7 window (49 tokens: not a multiple of the 8- or 16-wide vectors), head widths
# that are not a multiple of 8 (the portable loops even where AVX2 exists) or of 16 (AVX2 even
# where AVX-512 exists) and several images.
CASES = {
    "swin_b_stage1": (1, (24, 36), 12, 4, 32),
    "swin_b_stage3": (2, (12, 24), 12, 16, 32),
    "window7_heads3": (2, (14, 21), 7, 3, 32),
    "head_width_12": (1, (8, 8), 4, 2, 12),
    "head_width_40": (3, (8, 12), 4, 5, 40),
}
# Native vs reference: float32 rounding of a different summation order and exp polynomial.
TOL = dict(rtol=2e-5, atol=2e-5)


def _inputs(case: str, seed: int = 0, masked: bool = True):
    images, (hp, wp), w, heads, d = CASES[case]
    n, windows = w * w, (hp // w) * (wp // w)
    rng = np.random.default_rng(seed)
    qkv = rng.standard_normal((images * windows, n, 3, heads, d)).astype(np.float32)
    bias = rng.standard_normal((heads, n, n)).astype(np.float32)
    mask = shift_window_mask(hp, wp, w, w // 2) if masked else None
    return jnp.asarray(qkv), jnp.asarray(bias), mask, d**-0.5


def _native_available() -> bool:
    return jax.default_backend() == "cpu" and cpu_native.is_available()


needs_native = pytest.mark.skipif(
    not _native_available(), reason="the native CPU library is not built (or not a CPU backend)"
)


def test_native_library_is_built() -> None:
    """The package install compiles the native kernels; a missing library is a build failure."""
    if jax.default_backend() != "cpu":
        pytest.skip("the native core runs on the CPU backend only")
    assert cpu_native.is_available(), "native library missing: " + cpu_native.BUILD_HINT


# The vectors each path computes with; a path runs only head widths that are a multiple of them.
_PATH_WIDTH = {"auto": 1, "avx512": 16, "avx2": 8, "portable": 1}
_CASE_PATHS = [
    (case, path)
    for case in sorted(CASES)
    for path in _PATH_WIDTH
    if not CASES[case][4] % _PATH_WIDTH[path]
]


@needs_native
@pytest.mark.parametrize("masked", [True, False], ids=["mask", "nomask"])
@pytest.mark.parametrize("case,path", _CASE_PATHS)
def test_native_forward_equals_reference(case: str, path: str, masked: bool) -> None:
    """Every code path this CPU runs, on every case whose head width it takes ("auto" falls
    back to a narrower path for the others)."""
    if path != "auto" and path not in native_library.cpu_paths():
        pytest.skip(f"this CPU does not run the {path} path")
    qkv, bias, mask, scale = _inputs(case, masked=masked)
    mask = None if mask is None else jnp.asarray(mask)
    want = window_attention_reference(qkv, bias, mask, scale)
    got = jax.jit(lambda a, b, m: cpu_native.window_attention_cpu(a, b, m, scale, path=path))(
        qkv, bias, mask
    )
    assert got.shape == want.shape == (qkv.shape[0], qkv.shape[1], qkv.shape[3], qkv.shape[4])
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), **TOL)


@needs_native
def test_a_path_that_cannot_run_fails_clearly() -> None:
    """Asking for the AVX-512 path with a 12-wide head (which it does not take, on any CPU) is an
    error that says so, not a silent fallback."""
    qkv, bias, mask, scale = _inputs("head_width_12")
    with pytest.raises(Exception, match="requested code path does not run on this CPU"):
        jax.block_until_ready(
            cpu_native.window_attention_cpu(qkv, bias, jnp.asarray(mask), scale, path="avx512")
        )


@needs_native
def test_masked_tokens_get_no_weight() -> None:
    """A -1e9 mask entry removes a key: the output equals attention over the other keys only."""
    qkv, bias, _, scale = _inputs("head_width_12", seed=3, masked=False)
    n = qkv.shape[1]
    windows = qkv.shape[0]
    mask = np.zeros((windows, n, n), np.float32)
    mask[:, :, n // 2 :] = -1e9
    got = cpu_native.window_attention_cpu(qkv, bias, jnp.asarray(mask), scale)
    kept = qkv[:, : n // 2]
    q_all = qkv[:, :, 0] * scale  # (G, N, H, D)
    logits = jnp.einsum("gnhd,gmhd->ghnm", q_all, kept[:, :, 1]) + bias[None, :, :, : n // 2]
    want = jnp.einsum("ghnm,gmhd->gnhd", jax.nn.softmax(logits, -1), kept[:, :, 2])
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), **TOL)


@needs_native
def test_gradients_are_the_references() -> None:
    """The native core's backward is the reference's: gradients of qkv and bias agree."""
    qkv, bias, mask, scale = _inputs("window7_heads3", seed=1)
    mask = jnp.asarray(mask)
    weights = jnp.asarray(np.random.default_rng(2).standard_normal((qkv.shape[0], 49, 3, 32)))

    def loss(core):
        return lambda a, b: jnp.sum(core(a, b, mask, scale) * weights)

    want = jax.grad(loss(window_attention_reference), argnums=(0, 1))(qkv, bias)
    got = jax.jit(jax.grad(loss(cpu_native.window_attention_cpu), argnums=(0, 1)))(qkv, bias)
    for name, g, w in zip(("qkv", "bias"), got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-4, err_msg=name)


def test_implementation_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """ "auto" is the native core on CPU for float32 when built, else the reference."""
    assert available_implementations("gpu") == ("xla",)
    assert available_implementations("tpu") == ("xla",)
    assert resolve_implementation("xla") == "xla"
    assert resolve_implementation("auto", jnp.bfloat16) == "xla"
    with pytest.raises(ValueError, match=r"unknown implementation='pallas'"):
        resolve_implementation("pallas")
    if _native_available():
        assert available_implementations("cpu") == ("xla", "cpu")
        assert resolve_implementation("auto", jnp.float32) == "cpu"
        qkv, bias, mask, scale = _inputs("head_width_12")
        auto = window_attention(qkv, bias, jnp.asarray(mask), scale)
        native = cpu_native.window_attention_cpu(qkv, bias, jnp.asarray(mask), scale)
        np.testing.assert_array_equal(np.asarray(auto), np.asarray(native))
    monkeypatch.setattr(cpu_native, "is_available", lambda: False)
    assert resolve_implementation("auto", jnp.float32) == "xla"
    if jax.default_backend() == "cpu":
        with pytest.raises(ValueError, match=r"implementation='cpu' needs the native library"):
            resolve_implementation("cpu")


@pytest.mark.parametrize(
    "qkv_shape, bias_shape, mask_shape, field",
    [
        ((4, 16, 2, 2, 8), (2, 16, 16), None, "qkv"),
        ((4, 16, 3, 2, 8), (2, 16, 8), None, "bias"),
        ((4, 16, 3, 2, 8), (2, 16, 16), (3, 16, 16), "mask"),
        ((4, 16, 3, 2, 8), (2, 16, 16), (2, 16, 8), "mask"),
    ],
)
def test_bad_shapes_name_the_argument(qkv_shape, bias_shape, mask_shape, field) -> None:
    qkv = jnp.zeros(qkv_shape, jnp.float32)
    bias = jnp.zeros(bias_shape, jnp.float32)
    mask = None if mask_shape is None else jnp.zeros(mask_shape, jnp.float32)
    with pytest.raises(ValueError, match=rf"window_attention: {field} must be"):
        window_attention(qkv, bias, mask, 0.5, implementation="xla")
