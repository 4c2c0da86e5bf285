"""Conversion rules for the Swin backbone (:mod:`ov2seg_jax.models.backbones.swin`).

Two source formats:

* **detectron2 checkpoints of the original / Mask2Former** (``model`` dict of a ``.pth``/``.pkl``):
  keys under ``backbone.`` as listed in the Swin-B fixture manifest, e.g.
  ``backbone.patch_embed.proj.weight``, ``backbone.layers.{s}.blocks.{b}.attn.qkv.weight``,
  ``backbone.layers.{s}.downsample.reduction.weight``, ``backbone.norm{i}.weight``.
  Use :func:`swin_backbone_rules`; :func:`swin_ignored_source_keys` lists the
  ``relative_position_index`` buffers, which are deliberately skipped (the model recomputes the
  index; a checkpoint may or may not contain them).
* **the official Swin ImageNet release** (``model`` dict of e.g.
  ``swin_base_patch4_window12_384_22k.pth``): the same names without ``backbone.``, plus the
  classifier ``head.*``, the final ``norm.*`` and ``attn_mask`` buffers of shifted blocks, none of
  which the detection backbone uses (:func:`swin_imagenet_ignored_source_keys`). That format has no
  output norms ``norm0`` .. ``norm3``: :func:`swin_imagenet_rules` does not fill them, and
  :func:`swin_imagenet_unfilled_targets` names those leaves, which stay at their initial values
  (scale 1, bias 0, as torch's LayerNorm init, which is what detectron2 does when it loads such a
  checkpoint).

All ignored keys are *optional*: a converter should accept them present or absent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ov2seg_jax.convert.rules import Rule, conv, linear, norm


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def swin_backbone_rules(
    depths: Sequence[int],
    target_prefix: str = "params/backbone",
    source_prefix: str = "backbone.",
    out_indices: Sequence[int] = (0, 1, 2, 3),
    patch_norm: bool = True,
) -> list[Rule]:
    """Rules from a detectron2 Swin checkpoint to the ``SwinTransformer`` param tree.

    ``target_prefix`` is where the backbone's params sit in the variables tree (collection
    first); ``source_prefix`` is prepended to every original key. Output norms are made for
    ``out_indices`` only; stages 0 .. len(depths) - 2 have patch merging.
    """
    t = lambda name: _join(target_prefix, name)
    s = lambda name: f"{source_prefix}{name}"
    rules: list[Rule] = []
    rules += conv(t("patch_embed/proj"), s("patch_embed.proj"))
    if patch_norm:
        rules += norm(t("patch_embed/norm"), s("patch_embed.norm"))
    num_layers = len(depths)
    for stage, depth in enumerate(depths):
        for blk in range(depth):
            tb = f"layers_{stage}/blocks_{blk}"
            sb = f"layers.{stage}.blocks.{blk}"
            rules += norm(t(f"{tb}/norm1"), s(f"{sb}.norm1"))
            rules.append(
                Rule(
                    t(f"{tb}/attn/relative_position_bias_table"),
                    s(f"{sb}.attn.relative_position_bias_table"),
                )
            )
            rules += linear(t(f"{tb}/attn/qkv"), s(f"{sb}.attn.qkv"))
            rules += linear(t(f"{tb}/attn/proj"), s(f"{sb}.attn.proj"))
            rules += norm(t(f"{tb}/norm2"), s(f"{sb}.norm2"))
            rules += linear(t(f"{tb}/mlp/fc1"), s(f"{sb}.mlp.fc1"))
            rules += linear(t(f"{tb}/mlp/fc2"), s(f"{sb}.mlp.fc2"))
        if stage < num_layers - 1:
            td, sd = f"layers_{stage}/downsample", f"layers.{stage}.downsample"
            rules += norm(t(f"{td}/norm"), s(f"{sd}.norm"))
            rules.append(
                Rule(t(f"{td}/reduction/kernel"), s(f"{sd}.reduction.weight"), "linear_transpose")
            )
    for i in out_indices:
        rules += norm(t(f"norm{i}"), s(f"norm{i}"))
    return rules


def swin_ignored_source_keys(depths: Sequence[int], source_prefix: str = "backbone.") -> list[str]:
    """Keys of a detectron2 Swin checkpoint that are skipped on purpose (present or absent).

    These are the ``relative_position_index`` buffers (int64 (w*w, w*w)), one per block; the
    model rebuilds the index from the window size.
    """
    return [
        f"{source_prefix}layers.{stage}.blocks.{blk}.attn.relative_position_index"
        for stage, depth in enumerate(depths)
        for blk in range(depth)
    ]


def swin_imagenet_rules(
    depths: Sequence[int],
    target_prefix: str = "params/backbone",
    patch_norm: bool = True,
    source_prefix: str = "",
) -> list[Rule]:
    """Rules from the official Swin ImageNet release (no ``norm0..3``).

    The release's keys have no prefix; ``source_prefix`` (e.g. ``"module."``) is for copies
    saved from a wrapped model.
    """
    return swin_backbone_rules(
        depths,
        target_prefix=target_prefix,
        source_prefix=source_prefix,
        out_indices=(),
        patch_norm=patch_norm,
    )


def swin_imagenet_ignored_source_keys(depths: Sequence[int], source_prefix: str = "") -> list[str]:
    """Keys of an official Swin ImageNet checkpoint skipped on purpose (each present or absent).

    ``relative_position_index`` of every block, ``attn_mask`` of the shifted (odd) blocks (the
    release stores the mask of its training resolution; blocks whose stage grid equals the window
    are not shifted there and have none), the classifier ``head.*`` and the final ``norm.*``.
    ``source_prefix`` is prepended to every key, as in :func:`swin_imagenet_rules`.
    """
    keys = swin_ignored_source_keys(depths, source_prefix="")
    keys += [
        f"layers.{stage}.blocks.{blk}.attn_mask"
        for stage, depth in enumerate(depths)
        for blk in range(1, depth, 2)
    ]
    keys += ["norm.weight", "norm.bias", "head.weight", "head.bias"]
    return [f"{source_prefix}{k}" for k in keys]


def swin_imagenet_unfilled_targets(
    target_prefix: str = "params/backbone", out_indices: Sequence[int] = (0, 1, 2, 3)
) -> list[str]:
    """Leaves an ImageNet checkpoint cannot fill: the output norms, left at init (1, 0)."""
    return [
        _join(target_prefix, f"norm{i}/{leaf}") for i in out_indices for leaf in ("scale", "bias")
    ]


SWIN_IGNORED_SOURCE_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^(backbone\.)?layers\.\d+\.blocks\.\d+\.attn\.relative_position_index$"),
    re.compile(r"^(backbone\.)?layers\.\d+\.blocks\.\d+\.attn_mask$"),
    re.compile(r"^(norm|head)\.(weight|bias)$"),
)
"""The ignored keys of both formats as patterns, for converters that match by pattern."""
