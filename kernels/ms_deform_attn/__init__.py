"""Multi-scale deformable attention (MSDA) core of OV2Seg's pixel decoder.

``ms_deform_attn`` is the only entry point the model uses; ``implementation`` selects the backend
(today the pure-JAX reference, ``"xla"``; Pallas kernels are reserved names).
"""

from kernels.ms_deform_attn.api import (
    available_implementations,
    ms_deform_attn,
    normalize_spatial_shapes,
)
from kernels.ms_deform_attn.reference import ms_deform_attn_reference

__all__ = [
    "available_implementations",
    "ms_deform_attn",
    "ms_deform_attn_reference",
    "normalize_spatial_shapes",
]
