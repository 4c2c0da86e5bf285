"""Mask2Former's multi-scale deformable-attention pixel decoder (``MSDeformAttnPixelDecoder``).

Flow, for backbone maps ``res2``..``res5`` (NHWC):

1. the encoder inputs (``res3``..``res5`` by default) are taken coarsest first, each projected by
   a 1x1 conv + GroupNorm(32) (``input_proj_{i}``) and given the sine position encoding plus a
   learned per-level embedding;
2. ``num_encoder_layers`` deformable-attention encoder layers (post-norm) run over the
   concatenated tokens of all levels; every token is a query whose reference point is its own
   pixel centre on every level;
3. the encoder output is split back into maps (strides 32, 16, 8) and an FPN step per remaining
   finer level (``adapter_{k}`` 1x1 conv + GN, bilinear upsampling of the coarser map, then
   ``layer_{k}`` 3x3 conv + GN + ReLU) reaches the common stride (4);
4. a 1x1 conv gives the mask features.

Padding is never masked: all valid ratios are 1, as in the original's video model.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from kernels.ms_deform_attn import ms_deform_attn
from ov2seg_jax.models.conv import conv
from ov2seg_jax.models.initializers import (
    c2_xavier_fill,
    constant_array,
    msda_direction_grid,
    torch_default_bias,
    xavier_uniform,
    zeros,
)
from ov2seg_jax.models.interpolate import resize_bilinear
from ov2seg_jax.models.norm import group_norm, layer_norm
from ov2seg_jax.models.position_encoding import sine_position_encoding


@functools.lru_cache(maxsize=64)
def encoder_reference_points(spatial_shapes: tuple[tuple[int, int], ...]) -> np.ndarray:
    """(S, 2) float32 normalised (x, y) pixel centres of every token, levels concatenated."""
    pts = []
    for h, w in spatial_shapes:
        ys = (np.arange(h, dtype=np.float32) + np.float32(0.5)) / np.float32(h)
        xs = (np.arange(w, dtype=np.float32) + np.float32(0.5)) / np.float32(w)
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        pts.append(np.stack([xx.reshape(-1), yy.reshape(-1)], axis=-1))
    out = np.concatenate(pts, axis=0).astype(np.float32)
    out.setflags(write=False)
    return out


def fpn_features(
    in_features: Sequence[str],
    feature_strides: Sequence[int],
    transformer_in_features: Sequence[str],
    common_stride: int,
) -> list[str]:
    """The backbone maps that get an FPN step: those finer than the encoder's finest level,
    down to ``common_stride`` (``res2`` for the default layout)."""
    min_stride = min(
        s for f, s in zip(in_features, feature_strides, strict=True) if f in transformer_in_features
    )
    num_fpn = int(round(np.log2(min_stride) - np.log2(common_stride)))
    return list(in_features[:num_fpn])


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention (the ``MSDeformAttn`` module of Deformable DETR)."""

    d_model: int
    n_levels: int
    n_heads: int
    n_points: int
    implementation: str
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(
        self,
        query: jax.Array,
        reference_points: jax.Array,
        value_input: jax.Array,
        spatial_shapes: tuple[tuple[int, int], ...],
    ) -> jax.Array:
        """query (N, Lq, C); reference_points (Lq, 2) shared by the batch; value_input (N, S, C)."""
        n, lq, _ = query.shape
        m, lv, p = self.n_heads, self.n_levels, self.n_points
        # The original's reset: zero offset weights with the direction grid as bias (head h
        # starts looking along angle 2πh/m), uniform attention, xavier projections.
        value = nn.Dense(
            self.d_model,
            dtype=self.dtype,
            kernel_init=xavier_uniform,
            bias_init=zeros,
            name="value_proj",
        )(value_input)
        value = value.reshape(n, value.shape[1], m, self.d_model // m)
        offsets = nn.Dense(
            m * lv * p * 2,
            dtype=self.dtype,
            kernel_init=zeros,
            bias_init=constant_array(msda_direction_grid(m, lv, p)),
            name="sampling_offsets",
        )(query)
        offsets = offsets.reshape(n, lq, m, lv, p, 2)
        weights = nn.Dense(
            m * lv * p,
            dtype=self.dtype,
            kernel_init=zeros,
            bias_init=zeros,
            name="attention_weights",
        )(query)
        weights = jax.nn.softmax(weights.reshape(n, lq, m, lv * p).astype(jnp.float32), axis=-1)
        weights = weights.reshape(n, lq, m, lv, p)
        # Offsets are in pixels of each level: divide x by the level's width, y by its height.
        normalizer = np.asarray([[w, h] for h, w in spatial_shapes], np.float32)
        locations = (
            reference_points[None, :, None, None, None, :]
            + offsets.astype(jnp.float32) / normalizer[None, None, None, :, None, :]
        )
        out = ms_deform_attn(
            value,
            spatial_shapes,
            locations,
            weights.astype(value.dtype),
            implementation=self.implementation,
        )
        return nn.Dense(
            self.d_model,
            dtype=self.dtype,
            kernel_init=xavier_uniform,
            bias_init=zeros,
            name="output_proj",
        )(out)


class EncoderLayer(nn.Module):
    """Deformable self-attention + FFN, both post-norm (``MSDeformAttnTransformerEncoderLayer``)."""

    d_model: int
    ffn_dim: int
    n_levels: int
    n_heads: int
    n_points: int
    implementation: str
    dtype: jnp.dtype | None = None
    # The key of the FFN biases' draw: the original deep-copies one prototype layer, so every
    # encoder layer starts with the same biases (None: this layer's own key).
    bias_key: jax.Array | None = None

    @nn.compact
    def __call__(self, src, pos, reference_points, spatial_shapes):
        attn = MSDeformAttn(
            self.d_model,
            self.n_levels,
            self.n_heads,
            self.n_points,
            self.implementation,
            self.dtype,
            name="self_attn",
        )
        src = layer_norm("norm1", self.dtype)(
            src + attn(src + pos, reference_points, src, spatial_shapes)
        )
        keys = (None, None) if self.bias_key is None else jax.random.split(self.bias_key)
        y = nn.Dense(
            self.ffn_dim,
            dtype=self.dtype,
            kernel_init=xavier_uniform,
            bias_init=torch_default_bias(self.d_model, keys[0]),
            name="linear1",
        )(src)
        y = nn.Dense(
            self.d_model,
            dtype=self.dtype,
            kernel_init=xavier_uniform,
            bias_init=torch_default_bias(self.ffn_dim, keys[1]),
            name="linear2",
        )(nn.relu(y))
        return layer_norm("norm2", self.dtype)(src + y)


class PixelDecoder(nn.Module):
    """Returns ``(mask_features, multi_scale_features)``.

    ``mask_features`` (N, H/4, W/4, mask_dim); ``multi_scale_features``: the encoder maps at
    strides 32, 16, 8 (coarsest first, the order the transformer decoder consumes them).
    """

    # Sizes come from config.model.pixel_decoder (build_model); no defaults here.
    in_features: Sequence[str]
    transformer_in_features: Sequence[str]
    feature_strides: Sequence[int]
    conv_dim: int
    mask_dim: int
    num_encoder_layers: int
    num_heads: int
    num_points: int
    ffn_dim: int
    common_stride: int
    msda_implementation: str
    num_multi_scale: int = 3  # the original's fixed three levels for the transformer decoder
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, features: dict[str, jax.Array]) -> tuple[jax.Array, list[jax.Array]]:
        n_levels = len(self.transformer_in_features)
        srcs, shapes = [], []
        for i, name in enumerate(reversed(self.transformer_in_features)):
            x = features[name].astype(jnp.float32)
            x = conv(
                self.conv_dim,
                (1, 1),
                dtype=self.dtype,
                kernel_init=xavier_uniform,
                bias_init=zeros,
                name=f"input_proj_{i}_conv",
            )(x)
            x = group_norm(32, f"input_proj_{i}_norm", self.dtype)(x)
            srcs.append(x)
            shapes.append((x.shape[1], x.shape[2]))
        spatial_shapes = tuple(shapes)
        n = srcs[0].shape[0]
        level_embed = self.param(
            "level_embed", nn.initializers.normal(1.0), (n_levels, self.conv_dim)
        )
        pos = jnp.concatenate(
            [
                jnp.asarray(sine_position_encoding(h, w, self.conv_dim // 2)).reshape(h * w, -1)
                + level_embed[lvl]
                for lvl, (h, w) in enumerate(spatial_shapes)
            ],
            axis=0,
        )
        tokens = jnp.concatenate([s.reshape(n, -1, self.conv_dim) for s in srcs], axis=1)
        ref = jnp.asarray(encoder_reference_points(spatial_shapes))
        bias_key = self.make_rng("params") if self.is_initializing() else None
        for i in range(self.num_encoder_layers):
            tokens = EncoderLayer(
                self.conv_dim,
                self.ffn_dim,
                n_levels,
                self.num_heads,
                self.num_points,
                self.msda_implementation,
                self.dtype,
                bias_key,
                name=f"encoder_layers_{i}",
            )(tokens, pos[None], ref, spatial_shapes)
        outs, start = [], 0
        for h, w in spatial_shapes:
            outs.append(tokens[:, start : start + h * w].reshape(n, h, w, self.conv_dim))
            start += h * w

        fpn_inputs = fpn_features(
            self.in_features, self.feature_strides, self.transformer_in_features, self.common_stride
        )
        # Modules are numbered fine-to-coarse as in the original (adapter_1 is the finest level)
        # but applied coarse-to-fine.
        for k in reversed(range(len(fpn_inputs))):
            x = features[fpn_inputs[k]].astype(jnp.float32)
            lateral = conv(
                self.conv_dim,
                (1, 1),
                use_bias=False,
                dtype=self.dtype,
                kernel_init=c2_xavier_fill,
                name=f"adapter_{k + 1}_conv",
            )(x)
            lateral = group_norm(32, f"adapter_{k + 1}_norm", self.dtype)(lateral)
            y = lateral + resize_bilinear(outs[-1], lateral.shape[1:3])
            y = conv(
                self.conv_dim,
                (3, 3),
                padding=((1, 1), (1, 1)),
                use_bias=False,
                dtype=self.dtype,
                kernel_init=c2_xavier_fill,
                name=f"layer_{k + 1}_conv",
            )(y)
            y = nn.relu(group_norm(32, f"layer_{k + 1}_norm", self.dtype)(y))
            outs.append(y)
        mask_features = conv(
            self.mask_dim,
            (1, 1),
            dtype=self.dtype,
            kernel_init=c2_xavier_fill,
            bias_init=zeros,
            name="mask_features",
        )(outs[-1])
        return mask_features, outs[: self.num_multi_scale]
