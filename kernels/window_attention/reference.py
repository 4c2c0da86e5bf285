"""The pure-JAX window attention core: what every other implementation must equal.

Layout (all implementations): ``qkv`` (G, N, 3, H, D) is the qkv projection of G windows of N
tokens (G = images x windows per image, windows row-major per image), split into q/k/v, then
heads; ``bias`` (H, N, N) is added to the logits of every window; ``mask`` (W, N, N) or None is
added to window g's logits as ``mask[g % W]``. The result (G, N, H, D) is
``softmax((q * scale) @ k^T + bias + mask) @ v`` per window and head, heads side by side per token
(a reshape away from the output projection's input).

q, k and v are moved to head-major (3, G, H, N, D) so both products are plain batched matmuls over
one leading axis, the form XLA:CPU runs fastest. Logits, bias, mask and softmax are in at least
float32 so that a bfloat16 compute dtype does not round them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def window_attention_reference(
    qkv: jax.Array, bias: jax.Array, mask: jax.Array | None, scale: float
) -> jax.Array:
    """(G, N, 3, H, D), (H, N, N), (W, N, N) | None -> (G, N, H, D) in ``qkv``'s dtype."""
    g, n, _, heads, _ = qkv.shape
    qkv = qkv.transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    q = q * jnp.asarray(scale, q.dtype)
    logits = jnp.matmul(q, jnp.swapaxes(k, -1, -2))
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    logits = logits + bias.astype(logits.dtype)[None]
    if mask is not None:
        windows = mask.shape[0]
        logits = logits.reshape(g // windows, windows, heads, n, n)
        logits = logits + mask.astype(logits.dtype)[None, :, None]
        logits = logits.reshape(g, heads, n, n)
    attn = jax.nn.softmax(logits, axis=-1).astype(qkv.dtype)
    return jnp.matmul(attn, v).transpose(0, 2, 1, 3)
