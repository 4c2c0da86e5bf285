"""The CLIP text tower with projection in Flax: what transformers' ``CLIPTextModelWithProjection``
computes, without PyTorch.

Tokens + learned positions -> ``num_hidden_layers`` pre-LayerNorm transformer blocks with causal
self-attention (padding masked too) -> final LayerNorm -> the hidden state at the end-of-text
token -> ``text_projection`` (no bias). The end-of-text position is found as transformers does:
the largest token id when the config's ``eos_token_id`` is the legacy 2 (OpenAI's configs),
else the first ``eos_token_id``. Submodule names follow the checkpoint's
(``encoder.layers.N.self_attn.q_proj``...), so :mod:`~ov2seg_jax.vocabulary.clip_checkpoint`
maps weights by name. Matrix products run at ``Precision.HIGHEST`` (full float32 on every
backend).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

HIGHEST = jax.lax.Precision.HIGHEST

ACTIVATIONS = {
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
}


@dataclasses.dataclass(frozen=True)
class ClipTextDims:
    """The fields of a transformers ``CLIPTextConfig`` the text tower needs."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    max_position_embeddings: int
    projection_dim: int
    hidden_act: str
    layer_norm_eps: float
    eos_token_id: int

    def __post_init__(self) -> None:
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(
                f"hidden_act {self.hidden_act!r} is not supported; one of {sorted(ACTIVATIONS)}"
            )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}"
            )


def _dense(features: int, name: str, bias: bool = True) -> nn.Dense:
    return nn.Dense(features, use_bias=bias, precision=HIGHEST, name=name)


class SelfAttention(nn.Module):
    dims: ClipTextDims

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        b, length, width = x.shape
        heads = self.dims.num_attention_heads
        head_dim = width // heads

        def split(name):
            return _dense(width, name)(x).reshape(b, length, heads, head_dim)

        q = split("q_proj") * (head_dim**-0.5)
        k, v = split("k_proj"), split("v_proj")
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, precision=HIGHEST)
        logits = jnp.where(mask[:, None], logits, jnp.finfo(logits.dtype).min)
        weights = jax.nn.softmax(logits, axis=-1)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v, precision=HIGHEST)
        return _dense(width, "out_proj")(out.reshape(b, length, width))


class Mlp(nn.Module):
    dims: ClipTextDims

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = _dense(self.dims.intermediate_size, "fc1")(x)
        return _dense(self.dims.hidden_size, "fc2")(ACTIVATIONS[self.dims.hidden_act](x))


class EncoderLayer(nn.Module):
    dims: ClipTextDims

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        eps = self.dims.layer_norm_eps
        x = x + SelfAttention(self.dims, name="self_attn")(
            nn.LayerNorm(eps, name="layer_norm1")(x), mask
        )
        return x + Mlp(self.dims, name="mlp")(nn.LayerNorm(eps, name="layer_norm2")(x))


class ClipTextTower(nn.Module):
    """``(input_ids, attention_mask)`` (B, L) int -> projected text embeddings (B, D)."""

    dims: ClipTextDims

    @nn.compact
    def __call__(self, input_ids: jax.Array, attention_mask: jax.Array) -> jax.Array:
        d = self.dims
        length = input_ids.shape[1]
        if length > d.max_position_embeddings:
            raise ValueError(
                f"{length} tokens exceed max_position_embeddings {d.max_position_embeddings}"
            )
        tokens = self.param(
            "token_embedding", nn.initializers.normal(0.02), (d.vocab_size, d.hidden_size)
        )
        positions = self.param(
            "position_embedding",
            nn.initializers.normal(0.01),
            (d.max_position_embeddings, d.hidden_size),
        )
        x = jnp.take(tokens, input_ids, axis=0) + positions[None, :length]
        causal = jnp.tril(jnp.ones((length, length), bool))
        mask = causal[None] & attention_mask.astype(bool)[:, None, :]  # (B, query, key)
        for i in range(d.num_hidden_layers):
            x = EncoderLayer(d, name=f"layers_{i}")(x, mask)
        x = nn.LayerNorm(d.layer_norm_eps, name="final_layer_norm")(x)
        if d.eos_token_id == 2:  # legacy configs: the end-of-text token has the largest id
            eos = jnp.argmax(input_ids, axis=-1)
        else:
            eos = jnp.argmax(input_ids == d.eos_token_id, axis=-1)
        pooled = x[jnp.arange(x.shape[0]), eos]
        return _dense(d.projection_dim, "text_projection", bias=False)(pooled)
