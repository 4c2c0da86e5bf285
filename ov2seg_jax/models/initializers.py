"""The original's parameter initialisers, named after what they reproduce.

The original resets most of its parameters explicitly and leaves the rest to PyTorch's module
defaults; Flax's defaults (lecun-normal kernels, zero biases) differ from both. Which module uses
which initialiser is recorded where the module is defined; ``scripts/check_init.py`` compares a
fresh ``init`` against the statistics of the original's freshly built model.

* :data:`xavier_uniform`: ``nn.init.xavier_uniform_`` (U(±sqrt(6 / (fan_in + fan_out)))).
* :data:`xavier_uniform_fused_qkv`: ``xavier_uniform_`` applied to ``nn.MultiheadAttention``'s
  stacked (3d, d) in-projection; each of our separate (d, d) q/k/v kernels gets its third, i.e.
  the bound sqrt(6 / (d + 3d)).
* :data:`c2_xavier_fill`: fvcore's ``c2_xavier_fill`` = ``kaiming_uniform_(a=1)``
  (U(±sqrt(3 / fan_in))), for the FPN and mask-feature convolutions.
* :data:`torch_linear_kernel` / :func:`torch_default_bias`: ``nn.Linear``'s own reset,
  ``kaiming_uniform_(a=sqrt(5))`` = U(±1/sqrt(fan_in)) for the weight and U(±1/sqrt(fan_in)) for the
  bias (the bias initialiser needs the layer's fan-in, which Flax's bias shape does not carry).
* :data:`kaiming_normal_fan_out`: timm ResNet's ``kaiming_normal_(mode='fan_out',
  nonlinearity='relu')`` (N(0, 2 / fan_out), untruncated).
* :func:`msda_direction_grid`: deformable attention's ``sampling_offsets`` bias (exact values).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

xavier_uniform = nn.initializers.xavier_uniform()
xavier_uniform_fused_qkv = nn.initializers.variance_scaling(0.5, "fan_avg", "uniform")
c2_xavier_fill = nn.initializers.variance_scaling(1.0, "fan_in", "uniform")
torch_linear_kernel = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
kaiming_normal_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
zeros = nn.initializers.zeros


def torch_default_bias(fan_in: int, key: jax.Array | None = None):
    """U(±1/sqrt(fan_in)), ``nn.Linear``'s bias reset. With ``key`` every call draws the same
    numbers (the original's deep-copied encoder layers share their biases at initialisation)."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(rng, shape, dtype=jnp.float32):
        return jax.random.uniform(key if key is not None else rng, shape, dtype, -bound, bound)

    return init


def msda_direction_grid(n_heads: int, n_levels: int, n_points: int) -> np.ndarray:
    """(n_heads * n_levels * n_points * 2,) float32: head h looks along angle 2πh/n_heads, its
    direction scaled so that its larger coordinate is 1, and point p at (p + 1) times it, on
    every level (``MSDeformAttn._reset_parameters``; float32 as torch computes it)."""
    thetas = np.arange(n_heads, dtype=np.float32) * np.float32(2.0 * math.pi / n_heads)
    grid = np.stack([np.cos(thetas), np.sin(thetas)], -1).astype(np.float32)
    grid = grid / np.abs(grid).max(-1, keepdims=True)
    grid = np.tile(grid[:, None, None, :], (1, n_levels, n_points, 1))
    grid = grid * np.arange(1, n_points + 1, dtype=np.float32)[None, None, :, None]
    return grid.reshape(-1).astype(np.float32)


def constant_array(values: np.ndarray):
    """An initialiser returning ``values`` (shape checked)."""

    def init(rng, shape, dtype=jnp.float32):
        del rng
        if tuple(shape) != values.shape:
            raise ValueError(f"constant initialiser of shape {values.shape} asked for {shape}")
        return jnp.asarray(values, dtype)

    return init
