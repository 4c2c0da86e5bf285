"""Weight conversion as data: rules from Flax variable paths to original state-dict keys.

A :class:`Rule` says that the Flax leaf at ``target`` (a ``/``-joined path in the variables tree,
collection first, e.g. ``params/backbone/conv1/kernel``) is made from the original tensor
``source`` by the named ``transform``. Architectures contribute lists of rules (see the
``*_rules`` functions next to each model family); :mod:`ov2seg_jax.convert.converter` applies them
and reports what is missing, unused or mis-shaped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np


def _identity(a: np.ndarray) -> np.ndarray:
    return a


def _conv_oihw_to_hwio(a: np.ndarray) -> np.ndarray:
    if a.ndim != 4:
        raise ValueError(f"expected a 4-d OIHW conv kernel, got shape {a.shape}")
    return np.transpose(a, (2, 3, 1, 0))


def _linear_transpose(a: np.ndarray) -> np.ndarray:
    if a.ndim != 2:
        raise ValueError(f"expected a 2-d (out, in) linear weight, got shape {a.shape}")
    return a.T


def _third(i: int, transpose: bool) -> Callable[[np.ndarray], np.ndarray]:
    def split(a: np.ndarray) -> np.ndarray:
        if a.shape[0] % 3:
            raise ValueError(f"fused in-projection of length {a.shape[0]} is not divisible by 3")
        n = a.shape[0] // 3
        part = a[i * n : (i + 1) * n]
        return part.T if transpose else part

    return split


TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": _identity,
    "conv_oihw_to_hwio": _conv_oihw_to_hwio,
    "linear_transpose": _linear_transpose,
    # torch.nn.MultiheadAttention stacks q, k, v projections along the output axis.
    "in_proj_q_kernel": _third(0, True),
    "in_proj_k_kernel": _third(1, True),
    "in_proj_v_kernel": _third(2, True),
    "in_proj_q_bias": _third(0, False),
    "in_proj_k_bias": _third(1, False),
    "in_proj_v_bias": _third(2, False),
}


@dataclasses.dataclass(frozen=True)
class Rule:
    """The Flax leaf ``target`` is ``TRANSFORMS[transform](state_dict[source])``."""

    target: str
    source: str
    transform: str = "identity"

    def __post_init__(self):
        if self.transform not in TRANSFORMS:
            raise ValueError(f"rule for {self.target!r}: unknown transform {self.transform!r}")


def linear(target: str, source: str) -> list[Rule]:
    """A ``torch.nn.Linear`` -> ``flax.linen.Dense`` (kernel transposed, bias copied)."""
    return [
        Rule(f"{target}/kernel", f"{source}.weight", "linear_transpose"),
        Rule(f"{target}/bias", f"{source}.bias"),
    ]


def conv(target: str, source: str, bias: bool = True) -> list[Rule]:
    """A ``torch.nn.Conv2d`` -> ``flax.linen.Conv`` (OIHW -> HWIO)."""
    rules = [Rule(f"{target}/kernel", f"{source}.weight", "conv_oihw_to_hwio")]
    if bias:
        rules.append(Rule(f"{target}/bias", f"{source}.bias"))
    return rules


def norm(target: str, source: str) -> list[Rule]:
    """LayerNorm / GroupNorm affine parameters (``weight`` -> ``scale``)."""
    return [Rule(f"{target}/scale", f"{source}.weight"), Rule(f"{target}/bias", f"{source}.bias")]
