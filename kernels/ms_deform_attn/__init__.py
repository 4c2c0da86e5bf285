"""Multi-scale deformable attention (MSDA) core of OV2Seg's pixel decoder.

``ms_deform_attn`` is the only entry point the model uses; ``implementation`` selects the backend
(the pure-JAX reference ``"xla"``, the native CPU core ``"cpu"``, or the Pallas kernels
``"pallas_gpu"`` and ``"pallas_tpu"``).
"""

from kernels.ms_deform_attn.api import (
    available_implementations,
    ms_deform_attn,
    normalize_spatial_shapes,
)
from kernels.ms_deform_attn.heuristics import BlockSizes
from kernels.ms_deform_attn.reference import ms_deform_attn_reference
from kernels.ms_deform_attn.vjp import ms_deform_attn_pallas

__all__ = [
    "BlockSizes",
    "available_implementations",
    "ms_deform_attn",
    "ms_deform_attn_pallas",
    "ms_deform_attn_reference",
    "normalize_spatial_shapes",
]
