"""Read the architecture of an original OV2Seg checkpoint off its tensor shapes.

Lets a user (and the fixture checker) convert a checkpoint without writing a config for it: the
ResNet stage sizes and widths, Swin sizes, encoder/decoder depths, widths and query count all
follow from the state dict. Two numbers cannot be seen in the weights and take the original's
defaults: 4 sampling points per head in the deformable encoder (hard-coded in the original) and 8
decoder attention heads (``MODEL.MASK_FORMER.NHEADS``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import ml_collections
import numpy as np

from configs import ov2seg_r50_lvvis, ov2seg_swinb_lvvis
from ov2seg_jax.convert.ov2seg_rules import PD, PR

ENCODER_POINTS = 4
DECODER_HEADS = 8


def _count(keys, pattern: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    if found and found != set(range(max(found) + 1)):
        raise ValueError(f"checkpoint has gaps in the indices of {pattern!r}: {sorted(found)}")
    return len(found)


def _get(state: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    if key not in state:
        raise ValueError(f"checkpoint lacks {key!r}; is it an OV2Seg / Mask2Former checkpoint?")
    return state[key]


def infer_model_config(
    state: Mapping[str, np.ndarray], decoder_heads: int = DECODER_HEADS
) -> ml_collections.ConfigDict:
    """A ``config.model`` matching the checkpoint ``state`` (keys as the original saves them)."""
    keys = list(state)
    model = ov2seg_r50_lvvis.get_config().model
    bb = model.backbone
    if "backbone.base.conv1.weight" in state:
        stages = [_count(keys, rf"backbone\.base\.layer{s}\.(\d+)\.") for s in (1, 2, 3, 4)]
        bb.name = "resnet"
        bb.stage_sizes = tuple(stages)
        bb.widths = tuple(
            int(_get(state, f"backbone.base.layer{s}.0.conv1.weight").shape[0])
            for s in (1, 2, 3, 4)
        )
        bb.stem_width = int(state["backbone.base.conv1.weight"].shape[0])
    elif "backbone.patch_embed.proj.weight" in state:
        depths = tuple(
            _count(keys, rf"backbone\.layers\.{s}\.blocks\.(\d+)\.")
            for s in range(_count(keys, r"backbone\.layers\.(\d+)\."))
        )
        heads = tuple(
            int(
                _get(
                    state, f"backbone.layers.{s}.blocks.0.attn.relative_position_bias_table"
                ).shape[1]
            )
            for s in range(len(depths))
        )
        table = state["backbone.layers.0.blocks.0.attn.relative_position_bias_table"].shape[0]
        window = (int(round(math.sqrt(table))) + 1) // 2
        # the Swin config's other fields (drop path, attention implementation), this checkpoint's
        # sizes
        model.backbone = ov2seg_swinb_lvvis.get_config().model.backbone
        model.backbone.embed_dim = int(state["backbone.patch_embed.proj.weight"].shape[0])
        model.backbone.depths = depths
        model.backbone.num_heads = heads
        model.backbone.window_size = window
    else:
        raise ValueError(
            "checkpoint has neither a timm ResNet ('backbone.base.*') nor a Swin "
            "('backbone.patch_embed.*') backbone"
        )

    pd = model.pixel_decoder
    n_levels = _count(keys, rf"{re.escape(PD)}\.input_proj\.(\d+)\.")
    pd.conv_dim = int(_get(state, f"{PD}.input_proj.0.0.weight").shape[0])
    pd.mask_dim = int(_get(state, f"{PD}.mask_features.weight").shape[0])
    pd.num_encoder_layers = _count(keys, rf"{re.escape(PD)}\.transformer\.encoder\.layers\.(\d+)\.")
    layer0 = f"{PD}.transformer.encoder.layers.0"
    pd.ffn_dim = int(_get(state, f"{layer0}.linear1.weight").shape[0])
    aw = int(_get(state, f"{layer0}.self_attn.attention_weights.weight").shape[0])
    pd.num_points = ENCODER_POINTS
    pd.num_heads = aw // (n_levels * ENCODER_POINTS)
    pd.transformer_in_features = tuple(["res2", "res3", "res4", "res5"][-n_levels:])

    dec = model.decoder
    dec.hidden_dim = int(_get(state, f"{PR}.query_feat.weight").shape[1])
    dec.num_queries = int(state[f"{PR}.query_feat.weight"].shape[0])
    dec.num_layers = _count(keys, rf"{re.escape(PR)}\.transformer_ffn_layers\.(\d+)\.")
    dec.ffn_dim = int(_get(state, f"{PR}.transformer_ffn_layers.0.linear1.weight").shape[0])
    dec.num_heads = decoder_heads
    dec.text_embed_dim = int(_get(state, f"{PR}.class_embed.linear.2.weight").shape[0])
    zs = state.get(f"{PR}.class_embed.zs_weight")
    if zs is not None:
        model.num_classes = int(zs.shape[1]) - 1
    return model
