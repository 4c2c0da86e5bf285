"""Public entry point of the multi-scale deformable attention core: input checks and dispatch.

The model calls :func:`ms_deform_attn` and never an implementation directly: the pure-JAX
reference, the native CPU implementation and the Pallas kernels (GPU and TPU) sit behind the
``implementation`` switch. Every
call validates shapes and dtypes up front, while they are still static, and raises an error
naming the offending argument: a shape slip in the model then fails loudly at trace time instead
of producing a silently wrong gather.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from kernels.ms_deform_attn import cpu
from kernels.ms_deform_attn.reference import compute_dtype, ms_deform_attn_reference
from kernels.ms_deform_attn.shapes import SpatialShapes
from kernels.ms_deform_attn.vjp import KERNELS, ms_deform_attn_pallas

Implementation = Callable[[jax.Array, SpatialShapes, jax.Array, jax.Array], jax.Array]

IMPLEMENTATIONS: tuple[str, ...] = ("xla", "cpu", "pallas_gpu", "pallas_tpu")

# Device kinds (``jax.devices()[0].device_kind``) on which a Pallas kernel has passed
# ``scripts/check_msda.py`` compiled (not interpreted), with the kernel "auto" may pick there. A
# kernel that never ran on a device kind is not picked by default: "auto" runs the reference there,
# and the kernel stays one ``implementation=`` away. ``scripts/device_check.sh`` prints the line to
# add after a passing run.
VALIDATED_DEVICE_KINDS: dict[str, str] = {}


# Compute dtypes each implementation supports (half-precision inputs compute in float32).
COMPUTE_DTYPES: dict[str, tuple[str, ...]] = {
    "xla": ("float32", "float64"),
    "cpu": ("float32", "float64"),
    "pallas_gpu": ("float32", "float64"),
    "pallas_tpu": ("float32",),
}


def _implementation(name: str) -> Implementation:
    if name == "xla":
        return ms_deform_attn_reference
    if name == "cpu":
        return cpu.ms_deform_attn_cpu
    return functools.partial(ms_deform_attn_pallas, kernel=name)


def available_implementations(backend: str | None = None) -> tuple[str, ...]:
    """Names of the implementations that run on ``backend`` (default: jax's default backend).

    The reference runs everywhere; the native ``"cpu"`` implementation on the CPU backend once
    built; each Pallas kernel runs compiled on its own backend, and both run in interpret mode on
    CPU (slowly: for tests and debugging).
    """
    backend = backend or jax.default_backend()
    if backend == "cpu":
        return tuple(name for name in IMPLEMENTATIONS if name != "cpu" or cpu.is_available())
    return ("xla", *(name for name, (_, platform) in KERNELS.items() if platform == backend))


def auto_implementation(backend: str | None = None, device_kind: str | None = None) -> str:
    """What ``"auto"`` runs: on CPU the native implementation when it is built (it is faster than
    the reference and never materialises the corner tensor, see ``cpu.py``), else the reference;
    on a GPU/TPU the kernel listed for the device kind in ``VALIDATED_DEVICE_KINDS``, else the
    reference."""
    backend = backend or jax.default_backend()
    if backend == "cpu":
        return "cpu" if cpu.is_available() else "xla"
    if device_kind is None:
        device_kind = jax.devices()[0].device_kind
    kernel = VALIDATED_DEVICE_KINDS.get(device_kind)
    if kernel is not None and KERNELS[kernel][1] == backend:
        return kernel
    return "xla"


def resolve_implementation(implementation: str, dtype: jnp.dtype | None = None) -> str:
    """Map ``implementation`` to a concrete name, or raise ValueError saying what is available.

    ``"auto"`` is :func:`auto_implementation`, except that float64 computation on a GPU/TPU stays
    on the reference.
    """
    available = available_implementations()
    if implementation == "auto":
        name = auto_implementation()
        if name in KERNELS and dtype is not None and jnp.dtype(dtype) == jnp.float64:
            return "xla"
        return name
    if implementation in available:
        return implementation
    names = ", ".join(repr(name) for name in ("auto", *available))
    if implementation == "cpu" and jax.default_backend() == "cpu":
        raise ValueError(
            "ms_deform_attn: implementation='cpu' needs the native library, which is not built; "
            f"{cpu.BUILD_HINT}; available here: {names}"
        )
    if implementation in IMPLEMENTATIONS:
        raise ValueError(
            f"ms_deform_attn: implementation={implementation!r} does not run on the "
            f"{jax.default_backend()!r} backend; available here: {names}"
        )
    raise ValueError(
        f"ms_deform_attn: unknown implementation={implementation!r}; expected one of {names}"
    )


def normalize_spatial_shapes(spatial_shapes: Sequence[Sequence[int]] | np.ndarray) -> SpatialShapes:
    """Turn a static (L, 2) collection of (H, W) into a tuple of tuples of Python ints."""
    try:
        shapes = np.asarray(spatial_shapes)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError) as err:
        raise TypeError(
            "ms_deform_attn: spatial_shapes must be static (a tuple of (H, W) Python ints or a "
            "numpy array), not a traced array; close over it or mark it static under jit"
        ) from err
    except ValueError as err:  # ragged nesting
        raise ValueError(
            "ms_deform_attn: spatial_shapes must be a sequence of (H, W) pairs, got "
            f"{spatial_shapes!r}"
        ) from err
    if shapes.ndim != 2 or shapes.shape[1] != 2 or shapes.shape[0] == 0:
        raise ValueError(
            "ms_deform_attn: spatial_shapes must have shape (L, 2) with L >= 1 (one (H, W) per "
            f"level), got shape {shapes.shape}: {spatial_shapes!r}"
        )
    if shapes.dtype.kind not in "iu":
        raise TypeError(
            f"ms_deform_attn: spatial_shapes must hold integers, got dtype {shapes.dtype}: "
            f"{spatial_shapes!r}"
        )
    if np.any(shapes <= 0):
        raise ValueError(f"ms_deform_attn: spatial_shapes must be positive, got {shapes.tolist()}")
    return tuple((int(h), int(w)) for h, w in shapes.tolist())


def _check_floating(name: str, array: jax.Array) -> None:
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise TypeError(
            f"ms_deform_attn: {name} must have a floating dtype, got {array.dtype} "
            f"(shape {array.shape})"
        )


def check_inputs(
    value: jax.Array,
    spatial_shapes: SpatialShapes,
    sampling_locations: jax.Array,
    attention_weights: jax.Array,
) -> None:
    """Raise ValueError/TypeError, naming the argument and the shapes, on inconsistent inputs."""
    if value.ndim != 4:
        raise ValueError(f"ms_deform_attn: value must be (N, S, M, D), got shape {value.shape}")
    if sampling_locations.ndim != 6:
        raise ValueError(
            "ms_deform_attn: sampling_locations must be (N, Lq, M, L, P, 2), got shape "
            f"{sampling_locations.shape}"
        )
    if attention_weights.ndim != 5:
        raise ValueError(
            "ms_deform_attn: attention_weights must be (N, Lq, M, L, P), got shape "
            f"{attention_weights.shape}"
        )
    for name, array in (
        ("value", value),
        ("sampling_locations", sampling_locations),
        ("attention_weights", attention_weights),
    ):
        _check_floating(name, array)

    n, s, m, _ = value.shape
    total = sum(h * w for h, w in spatial_shapes)
    if total != s:
        raise ValueError(
            f"ms_deform_attn: sum of H*W over spatial_shapes {list(spatial_shapes)} is {total}, "
            f"but value has S={s} (value shape {value.shape})"
        )
    if sampling_locations.shape[-1] != 2:
        raise ValueError(
            "ms_deform_attn: the last axis of sampling_locations must be 2 (x, y), got shape "
            f"{sampling_locations.shape}"
        )
    expected = (n, sampling_locations.shape[1], m, len(spatial_shapes))
    actual = sampling_locations.shape[:4]
    if actual != expected:
        raise ValueError(
            "ms_deform_attn: sampling_locations (N, Lq, M, L, P, 2) has shape "
            f"{sampling_locations.shape}, but value {value.shape} and spatial_shapes (L="
            f"{len(spatial_shapes)}) require N={n}, M={m}, L={len(spatial_shapes)}"
        )
    if attention_weights.shape != sampling_locations.shape[:-1]:
        raise ValueError(
            f"ms_deform_attn: attention_weights has shape {attention_weights.shape}, expected "
            f"{sampling_locations.shape[:-1]} (sampling_locations shape {sampling_locations.shape} "
            "without its last axis)"
        )


def ms_deform_attn(
    value: jax.Array,
    spatial_shapes: Sequence[Sequence[int]] | np.ndarray,
    sampling_locations: jax.Array,
    attention_weights: jax.Array,
    *,
    implementation: str = "auto",
) -> jax.Array:
    """Multi-scale deformable attention core, as OV2Seg's ``ms_deform_attn_core_pytorch``.

    Args:
      value: (N, S, M, D) per-head projected values; S = sum of H*W over levels, levels
        concatenated in the order of ``spatial_shapes``, each flattened row-major (y then x).
      spatial_shapes: static (H, W) per level: a tuple of int pairs or an (L, 2) integer array.
      sampling_locations: (N, Lq, M, L, P, 2) normalised (x, y); 0 and 1 are the outer edges of
        a level (pixel coordinate = x * W - 0.5). Points outside sample zeros.
      attention_weights: (N, Lq, M, L, P), already normalised over L*P.
      implementation: ``"xla"`` (the pure-JAX reference, autodiff gradients), ``"cpu"`` (native
        C++ forward and backward, CPU only, built by the package install), ``"pallas_gpu"``
        (Triton kernels, compiled on GPUs), ``"pallas_tpu"`` (Mosaic TPU kernels, compiled on
        TPUs), or ``"auto"``: ``"cpu"`` on CPU when built; on GPU/TPU the kernel validated for
        the device kind (``VALIDATED_DEVICE_KINDS``), else the reference. On CPU the Pallas
        kernels run in interpret mode.

    Returns:
      (N, Lq, M*D) in ``value``'s dtype (channel = head * D + d); computed in float32 for half
      precision inputs and in float64 for float64 inputs.
    """
    shapes = normalize_spatial_shapes(spatial_shapes)
    value = jnp.asarray(value)
    sampling_locations = jnp.asarray(sampling_locations)
    attention_weights = jnp.asarray(attention_weights)
    check_inputs(value, shapes, sampling_locations, attention_weights)
    dtype = compute_dtype(value.dtype, sampling_locations.dtype, attention_weights.dtype)
    name = resolve_implementation(implementation, dtype)
    return _implementation(name)(value, shapes, sampling_locations, attention_weights)
