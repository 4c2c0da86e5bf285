"""Prediction heads of the decoder: MLPs and the zero-shot (text-embedding) classifier."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ov2seg_jax.models.initializers import torch_default_bias, torch_linear_kernel


def torch_linear(features: int, fan_in: int, dtype, name: str) -> nn.Dense:
    """A Dense layer initialised as ``nn.Linear`` (the original sets nothing for its heads)."""
    return nn.Dense(
        features,
        dtype=dtype,
        kernel_init=torch_linear_kernel,
        bias_init=torch_default_bias(fan_in),
        name=name,
    )


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
    """``torch.nn.functional.normalize``: ``x / max(||x||, eps)``."""
    norm = jnp.sqrt(jnp.sum(x * x, axis=axis, keepdims=True))
    return x / jnp.maximum(norm, eps)


class MLP(nn.Module):
    """Dense layers with ReLU between them (none after the last)."""

    features: Sequence[int]
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, f in enumerate(self.features):
            x = torch_linear(f, x.shape[-1], self.dtype, f"layers_{i}")(x)
            if i < len(self.features) - 1:
                x = nn.relu(x)
        return x


class ZeroShotClassifier(nn.Module):
    """Class logits as scaled cosine similarity with text embeddings, plus a background column.

    The query feature goes through ``linear_0`` (to half the text width) -> ReLU -> ``linear_2``
    (to the text width), is
    L2-normalised and multiplied by ``temperature``; each class embedding is L2-normalised; the
    logits are their dot products, followed by one constant-zero column for "no object".
    The embeddings are an argument, not a parameter, so the vocabulary can change per call.
    """

    embed_dim: int
    temperature: float
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array, class_embeddings: jax.Array) -> jax.Array:
        """x (..., hidden) and class_embeddings (C, embed_dim) -> logits (..., C + 1)."""
        x = torch_linear(self.embed_dim // 2, x.shape[-1], self.dtype, "linear_0")(x)
        x = torch_linear(self.embed_dim, self.embed_dim // 2, self.dtype, "linear_2")(nn.relu(x))
        x = self.temperature * l2_normalize(x.astype(jnp.float32))
        text = l2_normalize(class_embeddings.astype(jnp.float32))
        logits = jnp.einsum("...d,cd->...c", x, text)
        return jnp.concatenate([logits, jnp.zeros(logits.shape[:-1] + (1,), logits.dtype)], -1)
