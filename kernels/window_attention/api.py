"""Public entry point of the window attention core: input checks and dispatch.

The Swin backbone calls :func:`window_attention` and never an implementation directly. Shapes are
checked while still static, so a slip fails at trace time with the argument named.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kernels.window_attention import cpu
from kernels.window_attention.reference import window_attention_reference

IMPLEMENTATIONS: tuple[str, ...] = ("xla", "cpu")


def available_implementations(backend: str | None = None) -> tuple[str, ...]:
    """Names that run on ``backend`` (default: jax's default backend): the reference everywhere,
    the native ``"cpu"`` implementation on the CPU backend once built."""
    backend = backend or jax.default_backend()
    if backend == "cpu" and cpu.is_available():
        return IMPLEMENTATIONS
    return ("xla",)


def resolve_implementation(implementation: str, dtype: jnp.dtype | None = None) -> str:
    """Map ``implementation`` to a concrete name, or raise ValueError saying what is available.

    ``"auto"`` is the native core on CPU when it is built and the computation is float32 (the
    native core computes in float32 only; a bfloat16 model keeps the reference's bfloat16
    matmuls), else the reference.
    """
    available = available_implementations()
    if implementation == "auto":
        native = "cpu" in available and (dtype is None or jnp.dtype(dtype) == jnp.float32)
        return "cpu" if native else "xla"
    if implementation in available:
        return implementation
    names = ", ".join(repr(name) for name in ("auto", *available))
    if implementation == "cpu":
        why = (
            f"needs the native library, which is not built; {cpu.BUILD_HINT}"
            if jax.default_backend() == "cpu"
            else f"does not run on the {jax.default_backend()!r} backend"
        )
        raise ValueError(f"window_attention: implementation='cpu' {why}; available here: {names}")
    raise ValueError(
        f"window_attention: unknown implementation={implementation!r}; expected one of {names}"
    )


def _check(qkv: jax.Array, bias: jax.Array, mask: jax.Array | None) -> None:
    if qkv.ndim != 5 or qkv.shape[2] != 3:
        raise ValueError(
            f"window_attention: qkv must be (windows, tokens, 3, heads, head_dim), got {qkv.shape}"
        )
    g, n, _, heads, _ = qkv.shape
    if bias.shape != (heads, n, n):
        raise ValueError(
            f"window_attention: bias must be (heads, tokens, tokens) = {(heads, n, n)}, "
            f"got {bias.shape}"
        )
    if mask is not None and (mask.ndim != 3 or mask.shape[1:] != (n, n) or g % mask.shape[0]):
        raise ValueError(
            f"window_attention: mask must be (windows per image, {n}, {n}) with the window "
            f"count {g} a multiple of its first side, got {mask.shape}"
        )


def window_attention(
    qkv: jax.Array,
    bias: jax.Array,
    mask: jax.Array | None,
    scale: float,
    *,
    implementation: str = "auto",
) -> jax.Array:
    """Window attention core: (G, N, 3, H, D), (H, N, N), (W, N, N) | None -> (G, N, H, D).

    See :mod:`kernels.window_attention.reference` for the layout and the exact computation.
    """
    _check(qkv, bias, mask)
    if resolve_implementation(implementation, qkv.dtype) == "cpu":
        return cpu.window_attention_cpu(qkv, bias, mask, scale)
    return window_attention_reference(qkv, bias, mask, scale)
