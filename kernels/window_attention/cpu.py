"""The native CPU implementation: a C++ XLA FFI forward, gradients through the reference.

``native/window_attention_cpu.cc`` runs one (window, head) at a time with q, k^T and v packed in
cache and the logits living only in a block of rows, so the (G, H, N, N) logits never pass
through memory; with AVX-512 or AVX2/FMA (the widest the CPU has, chosen at run time) it is
several times faster than the reference on XLA:CPU. It computes in float32 only. The backward
pass recomputes the reference under ``jax.vjp``, so gradients are the reference's exactly; only
the forward values differ, by float rounding (a few ulps).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from kernels import native_library as library
from kernels.native_library import BUILD_HINT
from kernels.window_attention.reference import window_attention_reference

_HANDLERS = {"ov2seg_window_attention_cpu_forward_f32": "WindowAttentionForwardF32"}
# The FFI target names a lowered program calls (jax.export must be told to accept them).
FFI_TARGETS: tuple[str, ...] = tuple(_HANDLERS)


def is_available() -> bool:
    """Whether the native library is built (registering its handlers; CPU backend only)."""
    return library.register(tuple(_HANDLERS.items()))


def _forward(qkv, bias, mask, scale: float, path: str):
    g, n, _, heads, d = qkv.shape
    if mask is None:
        mask = jnp.zeros((0, n, n), jnp.float32)
    call = jax.ffi.ffi_call(
        "ov2seg_window_attention_cpu_forward_f32",
        jax.ShapeDtypeStruct((g, n, heads, d), jnp.float32),
        vmap_method="sequential",
    )
    return call(qkv, bias, mask, scale=np.float32(scale), path=library.path_attr(path))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _core(qkv, bias, mask, scale, path):
    return _forward(qkv, bias, mask, scale, path)


def _core_fwd(qkv, bias, mask, scale, path):
    return _forward(qkv, bias, mask, scale, path), (qkv, bias, mask)


def _core_bwd(scale, path, saved, grad_out):
    qkv, bias, mask = saved
    _, pullback = jax.vjp(lambda a, b: window_attention_reference(a, b, mask, scale), qkv, bias)
    grad_qkv, grad_bias = pullback(grad_out)
    return grad_qkv, grad_bias, None if mask is None else jnp.zeros_like(mask)


_core.defvjp(_core_fwd, _core_bwd)


def window_attention_cpu(
    qkv: jax.Array,
    bias: jax.Array,
    mask: jax.Array | None,
    scale: float,
    *,
    path: str = "auto",
) -> jax.Array:
    """The core through the native handler (no input checks; see the package's API).

    ``path``: "auto" (the widest vector path this CPU runs and the head width fits), or one of
    :data:`kernels.native_library.CPU_PATHS` alone (for tests; one that cannot run here fails
    when the program runs).
    Returns (G, N, H, D) in ``qkv``'s dtype.
    """
    if not is_available():
        raise RuntimeError(
            "window_attention: implementation='cpu' needs the native library in "
            f"{library.NATIVE_DIR}; {BUILD_HINT}"
        )
    out = _core(
        qkv.astype(jnp.float32),
        bias.astype(jnp.float32),
        None if mask is None else mask.astype(jnp.float32),
        float(scale),
        path,
    )
    return out.astype(qkv.dtype)
