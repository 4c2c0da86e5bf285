"""``torch.nn.MultiheadAttention`` (batch first here) with separate q/k/v projections.

The original stores the three input projections stacked in one ``in_proj_weight``; the converter
splits it into ``q_proj``/``k_proj``/``v_proj`` so each is an ordinary Dense layer.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ov2seg_jax.models.initializers import xavier_uniform, xavier_uniform_fused_qkv, zeros


class MultiheadAttention(nn.Module):
    """Scaled dot-product attention over ``num_heads`` heads.

    ``mask`` (optional, broadcastable to (N, heads, Lq, Lk)) is True where attention is NOT
    allowed, the convention of PyTorch boolean attention masks.
    """

    embed_dim: int
    num_heads: int
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(
        self, query: jax.Array, key: jax.Array, value: jax.Array, mask: jax.Array | None = None
    ) -> jax.Array:
        n, lq, _ = query.shape
        lk = key.shape[1]
        h, d = self.num_heads, self.embed_dim // self.num_heads

        # Initialised as the original's layers reset them: xavier over the stacked (3d, d)
        # in-projection, zero biases, xavier output projection.
        def dense(name, init):
            return nn.Dense(
                self.embed_dim, dtype=self.dtype, kernel_init=init, bias_init=zeros, name=name
            )

        q = dense("q_proj", xavier_uniform_fused_qkv)(query)
        k = dense("k_proj", xavier_uniform_fused_qkv)(key)
        v = dense("v_proj", xavier_uniform_fused_qkv)(value)
        q = q.reshape(n, lq, h, d) * (d**-0.5)
        k = k.reshape(n, lk, h, d)
        v = v.reshape(n, lk, h, d)
        logits = jnp.einsum("nqhd,nkhd->nhqk", q, k)
        if mask is not None:
            logits = jnp.where(mask, -jnp.inf, logits)
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
        out = jnp.einsum("nhqk,nkhd->nqhd", weights, v).reshape(n, lq, self.embed_dim)
        return dense("out_proj", xavier_uniform)(out)
