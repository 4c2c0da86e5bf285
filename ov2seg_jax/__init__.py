"""OV2Seg in JAX: open-vocabulary video instance segmentation.

Importing the package sets up glibc's malloc for XLA:CPU's per-call buffers
(:mod:`ov2seg_jax.host_allocator`; ``OV2SEG_HOST_ALLOCATOR=system`` opts out).
"""

from ov2seg_jax import host_allocator  # noqa: F401  (applied on import, before XLA's threads)
