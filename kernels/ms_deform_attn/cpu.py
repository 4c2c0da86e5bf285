"""The native CPU implementation: C++ XLA FFI handlers for the forward and the backward.

``native/msda_cpu.cc`` gathers, weights and accumulates one sample at a time, so the
(N, Lq, M, L, P, 4, D) corner tensor that the reference materialises never exists (about 4 GB for
a window of ten 480x864 frames). The package's build step compiles it into the native kernels'
library (:mod:`kernels.native_library`); this module registers its four handlers
(float32/float64 forward/backward) with ``jax.ffi`` for the CPU platform and joins them with a
``custom_vjp`` that saves only the three inputs. The loops are compiled for SSE2, AVX2 and
AVX-512; the widest this CPU runs is chosen at run time, and all give the same bits.

Half-precision inputs compute in float32 (as the reference does); the result has ``value``'s
dtype. Under ``vmap`` the calls run one batch element after another.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import numpy as np

from kernels import native_library as library
from kernels.ms_deform_attn.reference import compute_dtype
from kernels.ms_deform_attn.shapes import SpatialShapes
from kernels.native_library import BUILD_HINT

_HANDLERS = {
    "ov2seg_msda_cpu_forward_f32": "MsdaForwardF32",
    "ov2seg_msda_cpu_forward_f64": "MsdaForwardF64",
    "ov2seg_msda_cpu_backward_f32": "MsdaBackwardF32",
    "ov2seg_msda_cpu_backward_f64": "MsdaBackwardF64",
}
# The FFI target names a lowered program calls (jax.export must be told to accept them).
FFI_TARGETS: tuple[str, ...] = tuple(_HANDLERS)
_SUFFIX = {"float32": "f32", "float64": "f64"}


def _register() -> bool:
    """Register the handlers once per process; False if the library is not built."""
    return library.register(tuple(_HANDLERS.items()))


def is_available() -> bool:
    """Whether the native library is built (it runs on the CPU backend only)."""
    return _register()


def _level_attrs(spatial_shapes: SpatialShapes) -> dict[str, np.ndarray]:
    shapes = np.asarray(spatial_shapes, np.int64).reshape(-1, 2)
    return {
        "heights": np.ascontiguousarray(shapes[:, 0]),
        "widths": np.ascontiguousarray(shapes[:, 1]),
    }


def _forward(value, locations, weights, spatial_shapes: SpatialShapes, path: str):
    n, lq, m = locations.shape[:3]
    d = value.shape[-1]
    name = f"ov2seg_msda_cpu_forward_{_SUFFIX[value.dtype.name]}"
    call = jax.ffi.ffi_call(
        name, jax.ShapeDtypeStruct((n, lq, m, d), value.dtype), vmap_method="sequential"
    )
    return call(
        value, locations, weights, path=library.path_attr(path), **_level_attrs(spatial_shapes)
    )


def _backward(value, locations, weights, grad_output, spatial_shapes: SpatialShapes, path: str):
    name = f"ov2seg_msda_cpu_backward_{_SUFFIX[value.dtype.name]}"
    out_types = tuple(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in (value, locations, weights))
    call = jax.ffi.ffi_call(name, out_types, vmap_method="sequential")
    attrs = _level_attrs(spatial_shapes)
    return call(value, locations, weights, grad_output, path=library.path_attr(path), **attrs)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _core(value, locations, weights, spatial_shapes, path):
    return _forward(value, locations, weights, spatial_shapes, path)


def _core_fwd(value, locations, weights, spatial_shapes, path):
    out = _forward(value, locations, weights, spatial_shapes, path)
    return out, (value, locations, weights)


def _core_bwd(spatial_shapes, path, saved, grad_output):
    value, locations, weights = saved
    return _backward(value, locations, weights, grad_output, spatial_shapes, path)


_core.defvjp(_core_fwd, _core_bwd)


def ms_deform_attn_cpu(
    value: jax.Array,
    spatial_shapes: Sequence[tuple[int, int]],
    sampling_locations: jax.Array,
    attention_weights: jax.Array,
    *,
    path: str = "auto",
) -> jax.Array:
    """MSDA core through the native CPU handlers (no input checks; see the package's API).

    ``path``: "auto" (the widest vector path this CPU runs) or one of
    :data:`kernels.native_library.CPU_PATHS` alone (for tests; all give the same bits; one this
    CPU lacks fails when the program runs). Returns (N, Lq, M*D) in ``value``'s dtype.
    """
    if not _register():
        raise RuntimeError(
            f"ms_deform_attn: implementation='cpu' needs the native library in {library.NATIVE_DIR}; "
            + BUILD_HINT
        )
    shapes: SpatialShapes = tuple((int(h), int(w)) for h, w in spatial_shapes)
    dtype = compute_dtype(value.dtype, sampling_locations.dtype, attention_weights.dtype)
    n, lq, m = sampling_locations.shape[:3]
    out = _core(
        value.astype(dtype),
        sampling_locations.astype(dtype),
        attention_weights.astype(dtype),
        shapes,
        path,
    )
    return out.reshape(n, lq, m * value.shape[-1]).astype(value.dtype)
