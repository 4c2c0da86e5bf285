"""Differentiable Pallas implementations: each kernel forward joined to its backward kernels.

``jax.custom_vjp`` saves the three inputs (no large intermediates: the backward kernels recompute
the taps) and calls the backward kernel of the same family. ``gradients="reference"`` is the
escape hatch: the kernel's forward with the gradients of the pure-JAX reference, for when a
backward kernel is suspected or unavailable on some hardware.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from types import ModuleType

import jax

from kernels.ms_deform_attn import pallas_gpu, pallas_tpu
from kernels.ms_deform_attn.heuristics import BlockSizes
from kernels.ms_deform_attn.reference import ms_deform_attn_reference
from kernels.ms_deform_attn.shapes import SpatialShapes

# Implementation name -> (kernel module, the jax backend it compiles for).
KERNELS: dict[str, tuple[ModuleType, str]] = {
    "pallas_gpu": (pallas_gpu, "gpu"),
    "pallas_tpu": (pallas_tpu, "tpu"),
}

GRADIENTS = ("kernel", "reference")


def _differentiable(
    kernel: ModuleType,
    spatial_shapes: SpatialShapes,
    blocks: BlockSizes | None,
    interpret: bool,
    gradients: str,
):
    """(value, locations, weights) -> output with the chosen backward."""
    forward = functools.partial(
        kernel.forward, spatial_shapes=spatial_shapes, blocks=blocks, interpret=interpret
    )

    @jax.custom_vjp
    def core(value, locations, weights):
        return forward(value, sampling_locations=locations, attention_weights=weights)

    def core_fwd(value, locations, weights):
        return core(value, locations, weights), (value, locations, weights)

    def core_bwd(saved, grad_output):
        value, locations, weights = saved
        if gradients == "reference":
            _, vjp = jax.vjp(
                lambda v, loc, w: ms_deform_attn_reference(v, spatial_shapes, loc, w),
                value,
                locations,
                weights,
            )
            return vjp(grad_output)
        return kernel.backward(
            value,
            spatial_shapes,
            locations,
            weights,
            grad_output,
            blocks=blocks,
            interpret=interpret,
        )

    core.defvjp(core_fwd, core_bwd)
    return core


def ms_deform_attn_pallas(
    value: jax.Array,
    spatial_shapes: Sequence[tuple[int, int]],
    sampling_locations: jax.Array,
    attention_weights: jax.Array,
    *,
    kernel: str,
    blocks: BlockSizes | None = None,
    interpret: bool | None = None,
    gradients: str = "kernel",
) -> jax.Array:
    """MSDA core through a Pallas kernel (no input checks; see the package's public API).

    Args:
      value, spatial_shapes, sampling_locations, attention_weights: as ``ms_deform_attn``.
      kernel: ``"pallas_gpu"`` (Triton) or ``"pallas_tpu"`` (Mosaic TPU).
      blocks: tile sizes; by default the kernel's heuristic for this size.
      interpret: run the kernel in Pallas interpret mode (TPU interpret mode for ``pallas_tpu``);
        by default whenever the default backend is not the kernel's own.
      gradients: ``"kernel"`` (backward kernels) or ``"reference"`` (autodiff of the reference).

    Returns:
      (N, Lq, M*D) in ``value``'s dtype.
    """
    if kernel not in KERNELS:
        raise ValueError(
            f"ms_deform_attn_pallas: unknown kernel={kernel!r}; one of {list(KERNELS)}"
        )
    if gradients not in GRADIENTS:
        raise ValueError(
            f"ms_deform_attn_pallas: gradients={gradients!r}; expected one of {list(GRADIENTS)}"
        )
    module, platform = KERNELS[kernel]
    if interpret is None:
        interpret = jax.default_backend() != platform
    shapes: SpatialShapes = tuple((int(h), int(w)) for h, w in spatial_shapes)
    core = _differentiable(module, shapes, blocks, interpret, gradients)
    return core(value, sampling_locations, attention_weights)
