"""The conversion table of OV2Seg: Flax variable paths <- the original's state-dict keys.

Module names mirror the original's, so the table is mostly mechanical. Source keys that carry
nothing the Flax model needs are listed with a reason in :func:`ignored_source_keys`.
"""

from __future__ import annotations

import re

import ml_collections

from ov2seg_jax.convert.rules import Rule, conv, linear, norm
from ov2seg_jax.models.backbones import FEATURE_STRIDES
from ov2seg_jax.models.pixel_decoder import fpn_features

PD = "sem_seg_head.pixel_decoder"
PR = "sem_seg_head.predictor"

# Source keys read by no rule on purpose, with the reason reported to the user.
_IGNORED = (
    (r".*\.num_batches_tracked$", "BatchNorm step counter (only in detectron2 >= 2023-05)"),
    (r"^criterion\.", "training-loss buffer, rebuilt from metadata by the trainer"),
    (
        rf"^{re.escape(PR)}\.class_embed\.zs_weight$",
        "text classifier buffer: saved beside the checkpoint as classifier.npy, passed at call time",
    ),
    (r".*\.relative_position_index$", "Swin index buffer, recomputed from the window size"),
    (r"^pixel_(mean|std)$", "preprocessing constants, fixed in ov2seg_jax.models.preprocess"),
)


def ignored_source_keys(keys) -> dict[str, str]:
    """``{key: reason}`` for the keys of a state dict that are deliberately not converted."""
    out = {}
    for k in keys:
        for pattern, reason in _IGNORED:
            if re.match(pattern, k):
                out[k] = reason
                break
    return out


def _frozen_bn(target: str, source: str) -> list[Rule]:
    return [
        Rule(f"frozen/{target}/scale", f"{source}.weight"),
        Rule(f"frozen/{target}/bias", f"{source}.bias"),
        Rule(f"frozen/{target}/mean", f"{source}.running_mean"),
        Rule(f"frozen/{target}/var", f"{source}.running_var"),
    ]


def resnet_rules(
    stage_sizes, target_prefix: str = "backbone", source_prefix: str = "backbone.base."
) -> list[Rule]:
    """timm ResNet keys (``conv1``, ``bn1``, ``layerN.B.*``, ``downsample.0/1``)."""
    t, s = target_prefix, source_prefix
    rules = conv(f"params/{t}/conv1", f"{s}conv1", bias=False) + _frozen_bn(f"{t}/bn1", f"{s}bn1")
    for stage, n in enumerate(stage_sizes, start=1):
        for b in range(n):
            tb, sb = f"{t}/layer{stage}_{b}", f"{s}layer{stage}.{b}"
            for i in (1, 2, 3):
                rules += conv(f"params/{tb}/conv{i}", f"{sb}.conv{i}", bias=False)
                rules += _frozen_bn(f"{tb}/bn{i}", f"{sb}.bn{i}")
            if b == 0:
                rules += conv(f"params/{tb}/downsample_conv", f"{sb}.downsample.0", bias=False)
                rules += _frozen_bn(f"{tb}/downsample_bn", f"{sb}.downsample.1")
    return rules


def pixel_decoder_rules(
    num_encoder_layers: int, num_transformer_levels: int, num_fpn_levels: int
) -> list[Rule]:
    t = "params/pixel_decoder"
    rules = []
    for i in range(num_transformer_levels):
        rules += conv(f"{t}/input_proj_{i}_conv", f"{PD}.input_proj.{i}.0")
        rules += norm(f"{t}/input_proj_{i}_norm", f"{PD}.input_proj.{i}.1")
    rules.append(Rule(f"{t}/level_embed", f"{PD}.transformer.level_embed"))
    for i in range(num_encoder_layers):
        tl, sl = f"{t}/encoder_layers_{i}", f"{PD}.transformer.encoder.layers.{i}"
        for name in ("sampling_offsets", "attention_weights", "value_proj", "output_proj"):
            rules += linear(f"{tl}/self_attn/{name}", f"{sl}.self_attn.{name}")
        rules += norm(f"{tl}/norm1", f"{sl}.norm1") + norm(f"{tl}/norm2", f"{sl}.norm2")
        rules += linear(f"{tl}/linear1", f"{sl}.linear1") + linear(f"{tl}/linear2", f"{sl}.linear2")
    rules += conv(f"{t}/mask_features", f"{PD}.mask_features")
    for k in range(1, num_fpn_levels + 1):
        rules += conv(f"{t}/adapter_{k}_conv", f"{PD}.adapter_{k}", bias=False)
        rules += norm(f"{t}/adapter_{k}_norm", f"{PD}.adapter_{k}.norm")
        rules += conv(f"{t}/layer_{k}_conv", f"{PD}.layer_{k}", bias=False)
        rules += norm(f"{t}/layer_{k}_norm", f"{PD}.layer_{k}.norm")
    return rules


def _multihead_attention(target: str, source: str) -> list[Rule]:
    rules = []
    for part in ("q", "k", "v"):
        rules.append(
            Rule(
                f"{target}/{part}_proj/kernel", f"{source}.in_proj_weight", f"in_proj_{part}_kernel"
            )
        )
        rules.append(
            Rule(f"{target}/{part}_proj/bias", f"{source}.in_proj_bias", f"in_proj_{part}_bias")
        )
    return rules + linear(f"{target}/out_proj", f"{source}.out_proj")


def decoder_rules(num_layers: int) -> list[Rule]:
    t = "params/predictor"
    rules = []
    for i in range(num_layers):
        ts, ss = (
            f"{t}/transformer_self_attention_layers_{i}",
            f"{PR}.transformer_self_attention_layers.{i}",
        )
        rules += _multihead_attention(f"{ts}/self_attn", f"{ss}.self_attn") + norm(
            f"{ts}/norm", f"{ss}.norm"
        )
        tc, sc = (
            f"{t}/transformer_cross_attention_layers_{i}",
            f"{PR}.transformer_cross_attention_layers.{i}",
        )
        rules += _multihead_attention(f"{tc}/multihead_attn", f"{sc}.multihead_attn")
        rules += norm(f"{tc}/norm", f"{sc}.norm")
        tf, sf = f"{t}/transformer_ffn_layers_{i}", f"{PR}.transformer_ffn_layers.{i}"
        rules += linear(f"{tf}/linear1", f"{sf}.linear1") + linear(f"{tf}/linear2", f"{sf}.linear2")
        rules += norm(f"{tf}/norm", f"{sf}.norm")
    rules += norm(f"{t}/decoder_norm", f"{PR}.decoder_norm")
    for name in ("query_feat", "query_embed", "level_embed"):
        rules.append(Rule(f"{t}/{name}", f"{PR}.{name}.weight"))
    rules += linear(f"{t}/class_embed/linear_0", f"{PR}.class_embed.linear.0")
    rules += linear(f"{t}/class_embed/linear_2", f"{PR}.class_embed.linear.2")
    for i in range(2):
        rules += linear(f"{t}/object_embed/layers_{i}", f"{PR}.object_embed.layers.{i}")
    for i in range(3):
        rules += linear(f"{t}/mask_embed/layers_{i}", f"{PR}.mask_embed.layers.{i}")
    return rules


def ov2seg_rules(model_cfg: ml_collections.ConfigDict) -> list[Rule]:
    """Every rule of the model described by ``config.model``."""
    bb = model_cfg.backbone
    if bb.name == "resnet":
        rules = resnet_rules(bb.stage_sizes)
    elif bb.name == "swin":
        from ov2seg_jax.convert.swin_rules import swin_backbone_rules

        rules = swin_backbone_rules(tuple(bb.depths))
    else:
        raise ValueError(f"no conversion table for backbone {bb.name!r}")
    pd = model_cfg.pixel_decoder
    fpn = fpn_features(
        pd.in_features,
        [FEATURE_STRIDES[f] for f in pd.in_features],
        pd.transformer_in_features,
        pd.common_stride,
    )
    rules += pixel_decoder_rules(pd.num_encoder_layers, len(pd.transformer_in_features), len(fpn))
    rules += decoder_rules(model_cfg.decoder.num_layers)
    return rules
