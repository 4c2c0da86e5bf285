"""Mask2Former's masked-attention transformer decoder with OV2Seg's heads.

Each of ``num_layers`` layers does masked cross-attention to one level of the pixel decoder's
multi-scale maps (levels cycled coarsest first), then self-attention among the queries, then an
FFN, each post-norm. Before the first layer and after every layer the heads run on the
LayerNorm-ed queries: objectness (2 logits), zero-shot class logits and mask logits (a dot product
of the mask embedding with the stride-4 mask features). The mask logits, resized bilinearly to the
next level's size, give that layer's attention mask: a query may not attend where
``sigmoid(logit) < 0.5``, unless that would block every position, in which case it attends
everywhere. The mask is the same for all heads.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ov2seg_jax.models.attention import MultiheadAttention
from ov2seg_jax.models.heads import MLP, ZeroShotClassifier
from ov2seg_jax.models.initializers import torch_default_bias, xavier_uniform
from ov2seg_jax.models.interpolate import resize_bilinear
from ov2seg_jax.models.norm import layer_norm
from ov2seg_jax.models.outputs import HeadOutputs, ModelOutputs
from ov2seg_jax.models.position_encoding import sine_position_encoding


class CrossAttentionLayer(nn.Module):
    d_model: int
    num_heads: int
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, tgt, memory, mask, pos, query_pos):
        attn = MultiheadAttention(self.d_model, self.num_heads, self.dtype, name="multihead_attn")
        out = attn(tgt + query_pos, memory + pos, memory, mask)
        return layer_norm("norm", self.dtype)(tgt + out)


class SelfAttentionLayer(nn.Module):
    d_model: int
    num_heads: int
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, tgt, query_pos):
        q = tgt + query_pos
        out = MultiheadAttention(self.d_model, self.num_heads, self.dtype, name="self_attn")(
            q, q, tgt
        )
        return layer_norm("norm", self.dtype)(tgt + out)


class FFNLayer(nn.Module):
    d_model: int
    ffn_dim: int
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, tgt):
        # xavier weights (FFNLayer._reset_parameters), nn.Linear's default biases
        y = nn.Dense(
            self.ffn_dim,
            dtype=self.dtype,
            kernel_init=xavier_uniform,
            bias_init=torch_default_bias(tgt.shape[-1]),
            name="linear1",
        )(tgt)
        y = nn.Dense(
            self.d_model,
            dtype=self.dtype,
            kernel_init=xavier_uniform,
            bias_init=torch_default_bias(self.ffn_dim),
            name="linear2",
        )(nn.relu(y))
        return layer_norm("norm", self.dtype)(tgt + y)


class TransformerDecoder(nn.Module):
    """``MultiScaleMaskedTransformerDecoder`` (post-norm) with objectness and zero-shot heads."""

    # Sizes come from config.model.decoder (build_model); no defaults here.
    hidden_dim: int
    num_queries: int
    num_heads: int
    ffn_dim: int
    num_layers: int  # the original's DEC_LAYERS - 1
    mask_dim: int
    text_embed_dim: int
    classifier_temperature: float
    num_feature_levels: int = 3  # the original's fixed three levels
    dtype: jnp.dtype | None = None

    def setup(self):
        # Attribute names give the submodule names (``transformer_ffn_layers_0``, ...), which
        # mirror the original's state-dict keys.
        self.transformer_self_attention_layers = [
            SelfAttentionLayer(self.hidden_dim, self.num_heads, self.dtype)
            for _ in range(self.num_layers)
        ]
        self.transformer_cross_attention_layers = [
            CrossAttentionLayer(self.hidden_dim, self.num_heads, self.dtype)
            for _ in range(self.num_layers)
        ]
        self.transformer_ffn_layers = [
            FFNLayer(self.hidden_dim, self.ffn_dim, self.dtype) for _ in range(self.num_layers)
        ]
        self.decoder_norm = layer_norm(dtype=self.dtype)
        init = nn.initializers.normal(1.0)
        self.query_feat = self.param("query_feat", init, (self.num_queries, self.hidden_dim))
        self.query_embed = self.param("query_embed", init, (self.num_queries, self.hidden_dim))
        self.level_embed = self.param(
            "level_embed", init, (self.num_feature_levels, self.hidden_dim)
        )
        self.class_embed = ZeroShotClassifier(
            self.text_embed_dim, self.classifier_temperature, self.dtype
        )
        self.object_embed = MLP((self.hidden_dim, 2), self.dtype)
        self.mask_embed = MLP((self.hidden_dim, self.hidden_dim, self.mask_dim), self.dtype)

    def heads(self, output, mask_features, class_embeddings, attn_size):
        """Heads on queries (N, Q, C) -> (HeadOutputs, blocked mask (N, 1, Q, h*w))."""
        decoder_output = self.decoder_norm(output)
        object_logits = self.object_embed(decoder_output)
        mask_embed = self.mask_embed(decoder_output)
        masks = jnp.einsum("nqc,nhwc->nqhw", mask_embed, mask_features)
        class_logits = self.class_embed(decoder_output, class_embeddings)
        resized = resize_bilinear(jax.lax.stop_gradient(masks), attn_size, layout="NCHW")
        blocked = jax.nn.sigmoid(resized.reshape(*resized.shape[:2], -1)) < 0.5
        return HeadOutputs(class_logits, object_logits, masks), blocked[:, None]

    def __call__(
        self,
        multi_scale_features: list[jax.Array],
        mask_features: jax.Array,
        class_embeddings: jax.Array,
    ) -> ModelOutputs:
        n = mask_features.shape[0]
        srcs, poss, sizes = [], [], []
        for i, x in enumerate(multi_scale_features[: self.num_feature_levels]):
            h, w = x.shape[1], x.shape[2]
            sizes.append((h, w))
            pos = sine_position_encoding(h, w, self.hidden_dim // 2).reshape(h * w, -1)
            poss.append(jnp.asarray(pos)[None])
            srcs.append(x.reshape(n, h * w, -1) + self.level_embed[i])
        query_pos = jnp.broadcast_to(self.query_embed[None], (n,) + self.query_embed.shape)
        output = jnp.broadcast_to(self.query_feat[None], (n,) + self.query_feat.shape)

        stages = []
        head, blocked = self.heads(output, mask_features, class_embeddings, sizes[0])
        stages.append(head)
        for i in range(self.num_layers):
            lvl = i % self.num_feature_levels
            # A query whose mask blocks everything attends everywhere instead.
            blocked = jnp.where(jnp.all(blocked, axis=-1, keepdims=True), False, blocked)
            output = self.transformer_cross_attention_layers[i](
                output, srcs[lvl], blocked, poss[lvl], query_pos
            )
            output = self.transformer_self_attention_layers[i](output, query_pos)
            output = self.transformer_ffn_layers[i](output)
            head, blocked = self.heads(
                output, mask_features, class_embeddings, sizes[(i + 1) % self.num_feature_levels]
            )
            stages.append(head)
        final = stages[-1]
        return ModelOutputs(
            pred_logits=final.pred_logits,
            pred_object_logits=final.pred_object_logits,
            pred_masks=final.pred_masks,
            pred_embds=self.decoder_norm(output),
            aux_outputs=tuple(stages[:-1]),
        )
