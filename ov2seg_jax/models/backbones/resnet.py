"""The timm ResNet used by the original (``resnet50_in21k``): Bottleneck blocks, frozen norms.

Layout as timm builds it: a 7x7/2 stem conv, frozen BN, ReLU and a 3x3/2 max-pool, then four
stages of bottlenecks (1x1 -> 3x3 with the stage's stride -> 1x1, expansion 4), each stage opening
with a 1x1 strided projection shortcut. The stage outputs (timm's ``layer1``..``layer4``, which
the original calls ``layer2``..``layer5``) are returned as ``res2``..``res5``.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ov2seg_jax.models.conv import conv
from ov2seg_jax.models.initializers import kaiming_normal_fan_out
from ov2seg_jax.models.norm import FrozenBatchNorm


def _conv(features: int, kernel: int, stride: int, name: str, dtype) -> nn.Conv:
    pad = kernel // 2
    return conv(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        use_bias=False,
        dtype=dtype,
        kernel_init=kaiming_normal_fan_out,  # timm's init (a pretrained file replaces it)
        name=name,
    )


class Bottleneck(nn.Module):
    """timm's ``Bottleneck``; the stride sits on the 3x3 conv."""

    width: int
    stride: int
    downsample: bool
    expansion: int = 4
    dtype: jnp.dtype | None = None
    zero_init_last_bn: bool = False  # timm's zero_init_last_bn: bn3's fresh scale is 0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        out_ch = self.width * self.expansion
        y = _conv(self.width, 1, 1, "conv1", self.dtype)(x)
        y = nn.relu(FrozenBatchNorm(self.width, name="bn1")(y))
        y = _conv(self.width, 3, self.stride, "conv2", self.dtype)(y)
        y = nn.relu(FrozenBatchNorm(self.width, name="bn2")(y))
        y = _conv(out_ch, 1, 1, "conv3", self.dtype)(y)
        y = FrozenBatchNorm(out_ch, zero_init=self.zero_init_last_bn, name="bn3")(y)
        if self.downsample:
            x = _conv(out_ch, 1, self.stride, "downsample_conv", self.dtype)(x)
            x = FrozenBatchNorm(out_ch, name="downsample_bn")(x)
        return nn.relu(y + x)


class ResNet(nn.Module):
    """ResNet with Bottleneck blocks returning ``res2``..``res5`` (NHWC)."""

    stage_sizes: Sequence[int]  # config.model.backbone fields (build_model); no defaults here
    widths: Sequence[int]
    stem_width: int
    dtype: jnp.dtype | None = None
    zero_init_last_bn: bool = False

    @property
    def out_channels(self) -> dict[str, int]:
        return {f"res{i + 2}": w * 4 for i, w in enumerate(self.widths)}

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
        del train  # frozen norms, no dropout: training and inference compute the same
        x = _conv(self.stem_width, 7, 2, "conv1", self.dtype)(x)
        x = nn.relu(FrozenBatchNorm(self.stem_width, name="bn1")(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        feats = {}
        in_ch = self.stem_width
        for s, (n_blocks, width) in enumerate(zip(self.stage_sizes, self.widths, strict=True)):
            for b in range(n_blocks):
                stride = 2 if (s > 0 and b == 0) else 1
                downsample = b == 0 and (stride != 1 or in_ch != width * 4)
                x = Bottleneck(
                    width,
                    stride,
                    downsample,
                    dtype=self.dtype,
                    zero_init_last_bn=self.zero_init_last_bn,
                    name=f"layer{s + 1}_{b}",
                )(x)
                in_ch = width * 4
            feats[f"res{s + 2}"] = x
        return feats
