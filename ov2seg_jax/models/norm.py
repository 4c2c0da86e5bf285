"""Normalisation layers with the original's exact semantics."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

# PyTorch's LayerNorm/GroupNorm epsilon; flax defaults to 1e-6.
TORCH_NORM_EPS = 1e-5


def layer_norm(name: str | None = None, dtype=None) -> nn.LayerNorm:
    """``torch.nn.LayerNorm``: eps 1e-5, two-pass variance."""
    return nn.LayerNorm(epsilon=TORCH_NORM_EPS, use_fast_variance=False, dtype=dtype, name=name)


def group_norm(num_groups: int = 32, name: str | None = None, dtype=None) -> nn.GroupNorm:
    """``torch.nn.GroupNorm`` on NHWC maps: eps 1e-5, two-pass variance."""
    return nn.GroupNorm(
        num_groups=num_groups,
        epsilon=TORCH_NORM_EPS,
        use_fast_variance=False,
        dtype=dtype,
        name=name,
    )


class FrozenBatchNorm(nn.Module):
    """detectron2's ``FrozenBatchNorm2d``: ``(x - mean) / sqrt(var + eps) * weight + bias``.

    All four vectors are constants that training never updates, so they live in the ``frozen``
    variable collection rather than ``params``.
    """

    features: int
    eps: float = 1e-5
    zero_init: bool = False  # a fresh scale of 0 (timm's zero_init_last_bn on each block's bn3)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (self.features,)
        scale_init = jnp.zeros if self.zero_init else jnp.ones
        scale = self.variable("frozen", "scale", scale_init, shape).value
        bias = self.variable("frozen", "bias", jnp.zeros, shape).value
        mean = self.variable("frozen", "mean", jnp.zeros, shape).value
        var = self.variable("frozen", "var", jnp.ones, shape).value
        inv = jax.lax.rsqrt(var + self.eps) * scale
        return (x - mean) * inv.astype(x.dtype) + bias.astype(x.dtype)
