"""OV2Seg: backbone -> pixel decoder -> masked-attention decoder, and ``build_model(config)``."""

from __future__ import annotations

import flax.linen as nn
import jax
import ml_collections

from ov2seg_jax.config_fields import require
from ov2seg_jax.models.backbones import FEATURE_STRIDES
from ov2seg_jax.models.backbones.resnet import ResNet
from ov2seg_jax.models.outputs import ModelOutputs
from ov2seg_jax.models.pixel_decoder import PixelDecoder
from ov2seg_jax.models.transformer_decoder import TransformerDecoder

PIXEL_DECODER_FIELDS = (
    "in_features",
    "transformer_in_features",
    "conv_dim",
    "mask_dim",
    "num_encoder_layers",
    "num_heads",
    "num_points",
    "ffn_dim",
    "common_stride",
    "msda_implementation",
)
DECODER_FIELDS = (
    "hidden_dim",
    "num_queries",
    "num_heads",
    "ffn_dim",
    "num_layers",
    "text_embed_dim",
    "classifier_temperature",
)


class OV2Seg(nn.Module):
    """Per-frame OV2Seg network; frames are independent until tracking.

    ``images`` (N, Hp, Wp, 3): normalised frames padded to a multiple of 32.
    ``class_embeddings`` (C, D): the text classifier (one row per category), an input so that
    the vocabulary can change without rebuilding the model.
    """

    backbone: nn.Module
    pixel_decoder: PixelDecoder
    predictor: TransformerDecoder

    def __call__(
        self, images: jax.Array, class_embeddings: jax.Array, *, train: bool = False
    ) -> ModelOutputs:
        features = self.backbone(images, train=train)
        mask_features, multi_scale = self.pixel_decoder(features)
        return self.predictor(multi_scale, mask_features, class_embeddings)


# The fields each backbone reads from config.model.backbone (besides its name).
BACKBONE_FIELDS = {
    "resnet": ("stage_sizes", "widths", "stem_width"),
    "swin": (
        "embed_dim",
        "depths",
        "num_heads",
        "window_size",
        "drop_path_rate",
        "attention_implementation",
    ),
}


def build_backbone(cfg: ml_collections.ConfigDict) -> nn.Module:
    """The backbone module named by ``config.model.backbone.name``."""
    require(cfg, "config.model.backbone", ["name"])
    name = cfg.name
    if name in BACKBONE_FIELDS:
        require(cfg, "config.model.backbone", BACKBONE_FIELDS[name])
    if name == "resnet":
        return ResNet(
            stage_sizes=tuple(cfg.stage_sizes),
            widths=tuple(cfg.widths),
            stem_width=cfg.stem_width,
            zero_init_last_bn=cfg.zero_init_last_bn,
        )
    if name == "swin":
        from ov2seg_jax.models.backbones.swin import SwinTransformer

        return SwinTransformer(
            embed_dim=cfg.embed_dim,
            depths=tuple(cfg.depths),
            num_heads=tuple(cfg.num_heads),
            window_size=cfg.window_size,
            drop_path_rate=cfg.drop_path_rate,
            attention_implementation=cfg.attention_implementation,
        )
    raise ValueError(f"config.model.backbone.name must be 'resnet' or 'swin', got {name!r}")


def build_model(cfg: ml_collections.ConfigDict) -> OV2Seg:
    """Wire an :class:`OV2Seg` from ``config.model``; a missing field is a
    :class:`~ov2seg_jax.config_fields.MissingConfigField` naming it."""
    require(cfg, "config.model", ["backbone", "pixel_decoder", "decoder"])
    require(cfg.pixel_decoder, "config.model.pixel_decoder", PIXEL_DECODER_FIELDS)
    require(cfg.decoder, "config.model.decoder", DECODER_FIELDS)
    backbone = build_backbone(cfg.backbone)
    pd = cfg.pixel_decoder
    in_features = tuple(pd.in_features)
    pixel_decoder = PixelDecoder(
        in_features=in_features,
        transformer_in_features=tuple(pd.transformer_in_features),
        feature_strides=tuple(FEATURE_STRIDES[f] for f in in_features),
        conv_dim=pd.conv_dim,
        mask_dim=pd.mask_dim,
        num_encoder_layers=pd.num_encoder_layers,
        num_heads=pd.num_heads,
        num_points=pd.num_points,
        ffn_dim=pd.ffn_dim,
        common_stride=pd.common_stride,
        msda_implementation=pd.msda_implementation,
    )
    dec = cfg.decoder
    predictor = TransformerDecoder(
        hidden_dim=dec.hidden_dim,
        num_queries=dec.num_queries,
        num_heads=dec.num_heads,
        ffn_dim=dec.ffn_dim,
        num_layers=dec.num_layers,
        mask_dim=pd.mask_dim,
        text_embed_dim=dec.text_embed_dim,
        classifier_temperature=dec.classifier_temperature,
    )
    return OV2Seg(backbone=backbone, pixel_decoder=pixel_decoder, predictor=predictor)
