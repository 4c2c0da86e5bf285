"""Swin Transformer backbone, computing what the original's ``D2SwinTransformer`` computes.

The original (``ov2seg/modeling/backbone/swin.py``, Mask2Former's copy of the Swin detection
backbone) is reproduced operation for operation, in NHWC:

* patch embedding: a ``patch_size`` x ``patch_size`` convolution with stride ``patch_size`` (the
  image is first zero-padded at the bottom/right to a multiple of it), then a LayerNorm;
* four stages of pre-norm blocks. In every block the LayerNorm-ed token grid is zero-padded at the
  bottom/right to a multiple of the window; the padded tokens *take part* in attention (their
  q, k, v are the projection biases, nothing masks them) and are cropped off afterwards. Odd blocks
  roll the padded grid by ``-window // 2`` on both axes before cutting windows (and by ``+window // 2``
  after), adding -100 to logits between tokens of different shift regions;
* patch merging between stages (sub-grids [even rows, even cols], [odd rows, even cols],
  [even rows, odd cols], [odd rows, odd cols] concatenated on channels, LayerNorm, bias-free linear);
* per-stage output LayerNorms ``norm0`` .. ``norm3``.

All LayerNorms use eps 1e-5 and two-pass variance; GELU is the exact (erf) one. The attention core
(logits, bias, mask, softmax, weighted sum) of all windows of all images is one call of
:func:`kernels.window_attention.window_attention`, whose ``implementation`` switch
(``attention_implementation`` here) picks the XLA reference or the native CPU core. Window
padding, roll and partition are static token gathers (:mod:`.swin_windows`), and the shift masks
are built in numpy.

Submodule names mirror the original's state-dict names (``patch_embed/proj``,
``layers_{s}/blocks_{b}/attn/qkv``, ``layers_{s}/downsample/reduction``, ``norm{i}``...), so the
conversion table in :mod:`ov2seg_jax.convert.swin_rules` is a direct renaming.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.typing import Dtype

from kernels.window_attention import window_attention
from ov2seg_jax.models.backbones.swin_windows import (
    from_windows,
    shift_window_mask,
    to_windows,
    window_layout,
)
from ov2seg_jax.parity.manifest import swin_relative_position_index

__all__ = ["SwinTransformer", "shift_window_mask", "swin_from_preset"]

LN_EPS = 1e-5


def _layer_norm(name: str, dtype: Dtype) -> nn.LayerNorm:
    """torch.nn.LayerNorm equivalent: eps 1e-5, variance as E[(x - mean)^2]."""
    return nn.LayerNorm(epsilon=LN_EPS, use_fast_variance=False, dtype=dtype, name=name)


def drop_path_rates(depths: tuple[int, ...], drop_path_rate: float) -> list[float]:
    """Per-block stochastic-depth rates rising linearly from 0 to ``drop_path_rate``."""
    return [float(r) for r in np.linspace(0.0, drop_path_rate, sum(depths), dtype=np.float32)]


class DropPath(nn.Module):
    """Stochastic depth per sample (timm's ``DropPath``); identity when not training.

    Training draws one Bernoulli(1 - rate) per batch element from the ``'dropout'`` rng and scales
    kept samples by 1 / (1 - rate).
    """

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        if not train or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = jax.random.bernoulli(self.make_rng("dropout"), keep, shape)
        return jnp.where(mask, x / keep, jnp.zeros_like(x))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside (shifted) windows with a learned relative position bias.

    Input and output are tokens (B, H*W, C) of an (H, W) grid (after ``norm1``). As the original:
    the grid is zero-padded at the bottom/right to multiples of the window, rolled by
    ``-shift_size`` when shifted, cut into windows of N = window_size**2 tokens and attended with
    ``mask`` (nW, N, N) added when shifted; then merged, rolled back and cropped. Here those moves
    are the two gathers of :mod:`~ov2seg_jax.models.backbones.swin_windows`, and the projections,
    being per token, run on the H*W real tokens only: a padded token's q, k, v is exactly the qkv
    bias (the projection of a zero), and a padded token's output is cropped unprojected. The core
    between the projections is :func:`kernels.window_attention.window_attention`
    (``implementation``).
    """

    dim: int
    num_heads: int
    window_size: int
    shift_size: int = 0
    dtype: Dtype = jnp.float32
    implementation: str = "auto"

    @nn.compact
    def __call__(
        self, x: jax.Array, hw: tuple[int, int], mask: np.ndarray | None = None
    ) -> jax.Array:
        b, _, c = x.shape
        heads, w, s = self.num_heads, self.window_size, self.shift_size
        head_dim = c // heads
        n = w * w
        table = self.param(
            "relative_position_bias_table",
            nn.initializers.truncated_normal(stddev=0.02),
            ((2 * w - 1) ** 2, heads),
            jnp.float32,
        )
        qkv_proj = nn.Dense(3 * c, dtype=self.dtype, name="qkv")
        qkv = qkv_proj(x)
        windows = to_windows(qkv, hw, w, s, qkv_proj.variables["params"]["bias"])
        index = swin_relative_position_index(w).reshape(-1).astype(np.int32)
        bias = jnp.take(table.T, jnp.asarray(index), axis=1).reshape(heads, n, n)
        out = window_attention(
            windows.reshape(-1, n, 3, heads, head_dim),
            bias,
            None if mask is None else jnp.asarray(mask),
            head_dim**-0.5,
            implementation=self.implementation,
        )
        y = from_windows(out.reshape(b, -1, c), hw, w, s)
        return nn.Dense(c, dtype=self.dtype, name="proj")(y)


def gelu_erf(x: jax.Array) -> jax.Array:
    """Exact GELU as torch's ``nn.GELU()`` computes it: ``x / 2 * (1 + erf(x / sqrt(2)))``.

    ``jax.nn.gelu(approximate=False)`` computes the same function through ``erfc``; on XLA:CPU
    that form made Swin-B's stage-3 feed-forward (matmul, GELU, matmul) take twice as long
    (96 against 49 ms per frame), and the ``erf`` form is the original's own.
    """
    half = jnp.asarray(0.5, x.dtype)
    return x * half * (1 + jax.lax.erf(x * jnp.asarray(np.sqrt(0.5), x.dtype)))


class Mlp(nn.Module):
    """fc1 (C -> hidden), exact GELU (:func:`gelu_erf`), fc2 (hidden -> C)."""

    dim: int
    hidden_dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Dense(self.hidden_dim, dtype=self.dtype, name="fc1")(x)
        x = gelu_erf(x)
        return nn.Dense(self.dim, dtype=self.dtype, name="fc2")(x)


class SwinBlock(nn.Module):
    """One Swin block on tokens (B, H*W, C) of a static (H, W) grid; returns (B, H*W, C).

    ``shift_size`` 0 gives plain windows, > 0 shifted windows (the caller passes the matching
    mask from :func:`shift_window_mask` for the padded grid).
    """

    dim: int
    num_heads: int
    window_size: int
    shift_size: int = 0
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    dtype: Dtype = jnp.float32
    attention_implementation: str = "auto"

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        hw: tuple[int, int],
        mask: np.ndarray | None = None,
        *,
        train: bool = False,
    ) -> jax.Array:
        h, wd = hw
        _, length, c = x.shape
        if length != h * wd:
            raise ValueError(f"{length} tokens do not form a {h}x{wd} grid")
        w, s = self.window_size, self.shift_size
        if s > 0 and mask is None:
            raise ValueError("a shifted block needs its shift mask")
        drop = DropPath(self.drop_path)

        y = WindowAttention(
            c,
            self.num_heads,
            w,
            shift_size=s,
            dtype=self.dtype,
            implementation=self.attention_implementation,
            name="attn",
        )(_layer_norm("norm1", self.dtype)(x), (h, wd), mask if s > 0 else None)

        x = x + drop(y, train=train)
        hidden = int(self.dim * self.mlp_ratio)
        z = Mlp(self.dim, hidden, dtype=self.dtype, name="mlp")(_layer_norm("norm2", self.dtype)(x))
        return x + drop(z, train=train)


class PatchMerging(nn.Module):
    """(B, H*W, C) on an (H, W) grid -> (B, ceil(H/2)*ceil(W/2), 2C); odd sides zero-padded."""

    dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, hw: tuple[int, int]) -> jax.Array:
        h, wd = hw
        b, _, c = x.shape
        x = x.reshape(b, h, wd, c)
        if h % 2 or wd % 2:
            x = jnp.pad(x, ((0, 0), (0, h % 2), (0, wd % 2), (0, 0)))
        x = jnp.concatenate(
            [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], axis=-1
        )
        x = x.reshape(b, -1, 4 * c)
        x = _layer_norm("norm", self.dtype)(x)
        return nn.Dense(2 * self.dim, use_bias=False, dtype=self.dtype, name="reduction")(x)


class SwinStage(nn.Module):
    """One stage (the original's ``BasicLayer``): ``depth`` blocks, then optional patch merging.

    Takes tokens (B, H*W, C) on a static (H, W) grid. Returns ``(out, (H, W), down, (Hd, Wd))``:
    ``out`` (B, H*W, C) is the stage output before its output norm; ``down`` is the merged tokens
    (B, Hd*Wd, 2C) with Hd = ceil(H/2), Wd = ceil(W/2), or ``out`` and (H, W) again without
    ``downsample``.
    """

    dim: int
    depth: int
    num_heads: int
    window_size: int
    mlp_ratio: float = 4.0
    drop_path: tuple[float, ...] = ()
    downsample: bool = True
    dtype: Dtype = jnp.float32
    attention_implementation: str = "auto"

    @nn.compact
    def __call__(
        self, x: jax.Array, hw: tuple[int, int], *, train: bool = False
    ) -> tuple[jax.Array, tuple[int, int], jax.Array, tuple[int, int]]:
        h, wd = int(hw[0]), int(hw[1])
        w = self.window_size
        shift = w // 2
        hp, wp = window_layout(h, wd, w, shift).padded
        mask = shift_window_mask(hp, wp, w, shift) if self.depth > 1 else None
        rates = self.drop_path or (0.0,) * self.depth
        for i in range(self.depth):
            x = SwinBlock(
                self.dim,
                self.num_heads,
                w,
                shift_size=0 if i % 2 == 0 else shift,
                mlp_ratio=self.mlp_ratio,
                drop_path=rates[i],
                dtype=self.dtype,
                attention_implementation=self.attention_implementation,
                name=f"blocks_{i}",
            )(x, (h, wd), mask if i % 2 else None, train=train)
        if not self.downsample:
            return x, (h, wd), x, (h, wd)
        down = PatchMerging(self.dim, dtype=self.dtype, name="downsample")(x, (h, wd))
        return x, (h, wd), down, ((h + 1) // 2, (wd + 1) // 2)


BasicLayer = SwinStage


class PatchEmbed(nn.Module):
    """(B, H, W, 3) -> (B, H/p, W/p, embed_dim): stride-p conv (input zero-padded to multiples of
    p at the bottom/right) and an optional LayerNorm."""

    embed_dim: int
    patch_size: int = 4
    patch_norm: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        p = self.patch_size
        _, h, w, _ = x.shape
        if h % p or w % p:
            x = jnp.pad(x, ((0, 0), (0, -h % p), (0, -w % p), (0, 0)))
        x = nn.Conv(
            self.embed_dim, (p, p), strides=(p, p), padding="VALID", dtype=self.dtype, name="proj"
        )(x)
        if self.patch_norm:
            x = _layer_norm("norm", self.dtype)(x)
        return x


class SwinTransformer(nn.Module):
    """The Swin backbone (no absolute position embedding, as every Mask2Former/OV2Seg config).

    ``__call__`` takes normalised, padded NHWC images (N, H, W, 3) and returns
    ``{"res2": (N, H/4, W/4, C), "res3": (N, H/8, W/8, 2C), "res4": (N, H/16, W/16, 4C),
    "res5": (N, H/32, W/32, 8C)}`` (C = ``embed_dim``; entries for ``out_indices`` only), each
    after its output LayerNorm ``norm{i}``. Sides that are not multiples of 32 follow the
    original's rounding (patch embed pads up, patch merging rounds up).
    """

    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int
    drop_path_rate: float  # config.model.backbone.drop_path_rate
    mlp_ratio: float = 4.0
    patch_size: int = 4
    patch_norm: bool = True
    out_indices: tuple[int, ...] = (0, 1, 2, 3)
    dtype: Dtype = jnp.float32
    attention_implementation: str = "auto"  # config.model.backbone.attention_implementation

    @property
    def num_features(self) -> tuple[int, ...]:
        """Channel width of each stage's output."""
        return tuple(self.embed_dim * 2**i for i in range(len(self.depths)))

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
        if len(self.depths) != len(self.num_heads):
            raise ValueError(
                f"depths {self.depths} and num_heads {self.num_heads} differ in length"
            )
        x = PatchEmbed(
            self.embed_dim, self.patch_size, self.patch_norm, dtype=self.dtype, name="patch_embed"
        )(x)
        b, h, w, c = x.shape
        x = x.reshape(b, h * w, c)
        rates = drop_path_rates(tuple(self.depths), self.drop_path_rate)
        num_layers = len(self.depths)
        outs: dict[str, jax.Array] = {}
        start = 0
        for i in range(num_layers):
            depth = self.depths[i]
            dim = self.num_features[i]
            out, (ho, wo), x, (h, w) = SwinStage(
                dim,
                depth,
                self.num_heads[i],
                self.window_size,
                mlp_ratio=self.mlp_ratio,
                drop_path=tuple(rates[start : start + depth]),
                downsample=i < num_layers - 1,
                dtype=self.dtype,
                attention_implementation=self.attention_implementation,
                name=f"layers_{i}",
            )(x, (h, w), train=train)
            start += depth
            if i in self.out_indices:
                out = _layer_norm(f"norm{i}", self.dtype)(out)
                outs[f"res{i + 2}"] = out.reshape(b, ho, wo, dim)
        return outs


@dataclasses.dataclass(frozen=True)
class SwinSize:
    """Architecture sizes of one Swin variant (``pretrain_img_size`` only matters with APE)."""

    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int
    pretrain_img_size: int


SWIN_PRESETS: dict[str, SwinSize] = {
    "tiny": SwinSize(96, (2, 2, 6, 2), (3, 6, 12, 24), 7, 224),
    "small": SwinSize(96, (2, 2, 18, 2), (3, 6, 12, 24), 7, 224),
    "base": SwinSize(128, (2, 2, 18, 2), (4, 8, 16, 32), 12, 384),
    "large": SwinSize(192, (2, 2, 18, 2), (6, 12, 24, 48), 12, 384),
}
_ALIASES = {"t": "tiny", "s": "small", "b": "base", "l": "large"}


def swin_preset(name: str) -> SwinSize:
    """Sizes of ``'tiny'``/``'small'``/``'base'``/``'large'`` (or ``'T'``, ``'S'``, ``'B'``, ``'L'``)."""
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key not in SWIN_PRESETS:
        raise KeyError(f"unknown Swin preset {name!r}; known: {sorted(SWIN_PRESETS)}")
    return SWIN_PRESETS[key]


def swin_from_preset(name: str, **overrides: Any) -> SwinTransformer:
    """A :class:`SwinTransformer` with a preset's sizes; ``overrides`` set the other fields
    (``drop_path_rate``, required, ``out_indices``, ``dtype``, ...)."""
    size = swin_preset(name)
    fields = dict(
        embed_dim=size.embed_dim,
        depths=size.depths,
        num_heads=size.num_heads,
        window_size=size.window_size,
    )
    fields.update(overrides)
    return SwinTransformer(**fields)
