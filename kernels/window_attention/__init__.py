"""Swin's windowed multi-head self-attention core (logits, bias, mask, softmax, weighted sum).

``window_attention`` is the only entry point the model uses; ``implementation`` selects the
backend: the pure-JAX reference ``"xla"`` (runs everywhere, differentiable as is) or the native
CPU core ``"cpu"`` (forward in C++, gradients through the reference).
"""

from kernels.window_attention.api import (
    available_implementations,
    resolve_implementation,
    window_attention,
)
from kernels.window_attention.reference import window_attention_reference

__all__ = [
    "available_implementations",
    "resolve_implementation",
    "window_attention",
    "window_attention_reference",
]
