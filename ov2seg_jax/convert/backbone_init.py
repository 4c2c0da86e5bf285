"""Start training from an ImageNet-pretrained backbone, as the original does.

The original initialises its backbone from ``MODEL.WEIGHTS`` before training:

* **R50**: ``models/resnet50_miil_21k.pkl``, the MIIL ImageNet-21k ``resnet50`` in timm's layout
  (``conv1.weight``, ``bn1.*``, ``layerS.B.convK.weight``, ``layerS.B.bnK.*``,
  ``layerS.0.downsample.{0,1}.*``, ``fc.*``), re-pickled as ``{"model": state_dict, ...}`` (the
  downloaded ``resnet50_miil_21k.pth`` holds the same dict, bare or under ``"state_dict"``).
  detectron2 matches the keys to ``backbone.base.*`` by suffix; the classifier ``fc.*`` matches
  nothing.
* **Swin-B**: the official Swin release's ImageNet-22k checkpoint
  (``swin_base_patch4_window12_384_22k.pth``, ``{"model": state_dict}``). Its classifier
  ``head.*``, final ``norm.*``, ``attn_mask`` and ``relative_position_index`` buffers are not
  used; it has no per-stage output norms ``norm0`` .. ``norm3``, which keep their initialisation
  (scale 1, bias 0 -- torch's and flax's LayerNorm init alike).

:func:`load_pretrained_backbone` turns such a file into the variables that sit under the
``backbone`` key of every collection of the full model (``{"params": ..., "frozen": ...}`` for
the ResNet, ``{"params": ...}`` for Swin), with a report that accounts for every source key;
:func:`merge_backbone` puts them into freshly initialised model variables.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

import jax.numpy as jnp
import ml_collections
import numpy as np

from ov2seg_jax.convert.convert_ov2seg import abstract_variables
from ov2seg_jax.convert.converter import (
    ConversionError,
    ConversionReport,
    apply_rules,
    flatten_paths,
    target_shapes_of,
    unflatten_paths,
)
from ov2seg_jax.convert.ov2seg_rules import resnet_rules
from ov2seg_jax.convert.readers import load_state_dict
from ov2seg_jax.convert.rules import Rule
from ov2seg_jax.convert.swin_rules import (
    swin_imagenet_ignored_source_keys,
    swin_imagenet_rules,
    swin_imagenet_unfilled_targets,
)

BACKBONE = "backbone"

# Prefixes a pretrained state dict may carry: none (the releases), or torch's DataParallel one.
_PREFIXES = ("", "module.")

# Why each kind of skipped source key is skipped, by the key's last components.
_RESNET_REASONS = (
    (r"fc\.(weight|bias)$", "ImageNet-21k classifier head; the detection backbone has none"),
    (r"num_batches_tracked$", "BatchNorm step counter; frozen norms keep no counter"),
)
_SWIN_REASONS = (
    (r"relative_position_index$", "index buffer, recomputed from the window size"),
    (r"attn_mask$", "shift mask of the ImageNet training resolution, rebuilt for each input size"),
    (r"^(module\.)?head\.(weight|bias)$", "ImageNet-22k classifier head; the backbone has none"),
    (
        r"^(module\.)?norm\.(weight|bias)$",
        "final norm of the classifier; the detection backbone normalises each stage output with "
        "its own norm0..norm3 instead",
    ),
)
_KEPT_AT_INIT_REASON = (
    "per-stage output norm of the detection backbone, absent from ImageNet checkpoints: "
    "left at its initialisation (scale 1, bias 0), as when the original loads this checkpoint"
)
# Initial value of each LayerNorm leaf (flax's and torch's defaults agree).
_LAYER_NORM_INIT = {"scale": np.ones, "bias": np.zeros}


@dataclasses.dataclass
class BackboneInitReport(ConversionReport):
    """A :class:`ConversionReport` plus the leaves deliberately left at their initialisation.

    ``kept_at_init`` maps variable paths (collection first, e.g. ``params/backbone/norm0/scale``)
    to the reason; those leaves are not counted as unfilled.
    """

    source_format: str = ""
    kept_at_init: dict[str, str] = dataclasses.field(default_factory=dict)

    def format(self, max_items: int = 20) -> str:
        lines = [f"source format: {self.source_format}", super().format(max_items)]
        if self.kept_at_init:
            lines.append(f"model leaves kept at their initialisation ({len(self.kept_at_init)}):")
            lines.extend(f"  {k}: {why}" for k, why in list(self.kept_at_init.items())[:max_items])
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How one pretrained format maps onto the backbone."""

    source_format: str
    rules: list[Rule]
    ignored: dict[str, str]  # present source keys skipped on purpose -> reason
    init_leaves: dict[str, str]  # target leaves allowed to stay at init -> reason


def _source_prefix(state_dict: Mapping, probe: str, kind: str, source: str) -> str:
    """The prefix (see ``_PREFIXES``) under which ``probe`` is in the state dict."""
    for prefix in _PREFIXES:
        if f"{prefix}{probe}" in state_dict:
            return prefix
    sample = ", ".join(sorted(state_dict)[:5])
    raise ConversionError(
        f"{source} is not a {kind} state dict: it has no key {probe!r} "
        f"(also looked for {', '.join(repr(p + probe) for p in _PREFIXES if p)}); "
        f"its first keys are: {sample}"
    )


def _reasons(keys: Sequence[str], state_dict: Mapping, table) -> dict[str, str]:
    """``{key: reason}`` for the ``keys`` present in the state dict."""
    out = {}
    for key in keys:
        if key not in state_dict:
            continue
        for pattern, reason in table:
            if re.search(pattern, key):
                out[key] = reason
                break
        else:  # every key listed as skippable has a reason in the table
            raise AssertionError(f"no reason recorded for skipping {key!r}")
    return out


def _resnet_plan(state_dict: Mapping, cfg: ml_collections.ConfigDict, source: str) -> _Plan:
    prefix = _source_prefix(state_dict, "conv1.weight", "timm ResNet", source)
    rules = resnet_rules(tuple(cfg.stage_sizes), target_prefix=BACKBONE, source_prefix=prefix)
    skippable = [f"{prefix}fc.weight", f"{prefix}fc.bias"]
    skippable += [
        r.source.removesuffix("running_mean") + "num_batches_tracked"
        for r in rules
        if r.source.endswith(".running_mean")
    ]
    return _Plan(
        f"timm ResNet state dict (key prefix {prefix!r})",
        rules,
        _reasons(skippable, state_dict, _RESNET_REASONS),
        {},
    )


def _swin_plan(state_dict: Mapping, cfg: ml_collections.ConfigDict, source: str) -> _Plan:
    prefix = _source_prefix(state_dict, "patch_embed.proj.weight", "Swin ImageNet", source)
    depths = tuple(cfg.depths)
    rules = swin_imagenet_rules(depths, f"params/{BACKBONE}", source_prefix=prefix)
    skippable = swin_imagenet_ignored_source_keys(depths, source_prefix=prefix)
    init_leaves = swin_imagenet_unfilled_targets(f"params/{BACKBONE}", range(len(depths)))
    return _Plan(
        f"Swin ImageNet state dict (key prefix {prefix!r})",
        rules,
        _reasons(skippable, state_dict, _SWIN_REASONS),
        {t: _KEPT_AT_INIT_REASON for t in init_leaves},
    )


def backbone_target_shapes(model_cfg: ml_collections.ConfigDict) -> dict[str, tuple[int, ...]]:
    """``{path: shape}`` of every leaf under ``backbone`` in the full model's variables.

    Paths are collection first (``params/backbone/conv1/kernel``,
    ``frozen/backbone/bn1/mean``); computed with ``jax.eval_shape``, so nothing is run.
    """
    shapes = target_shapes_of(abstract_variables(model_cfg))
    return {k: v for k, v in shapes.items() if k.split("/")[1] == BACKBONE}


def _strip_backbone(path: str) -> str:
    collection, _, rest = path.split("/", 2)
    return f"{collection}/{rest}"


def convert_backbone_state_dict(
    state_dict: Mapping[str, np.ndarray],
    model_cfg: ml_collections.ConfigDict,
    *,
    source: str = "checkpoint",
) -> tuple[dict, BackboneInitReport]:
    """Map a pretrained backbone state dict onto the backbone of ``model_cfg`` (``config.model``).

    Returns ``(backbone_variables, report)``: ``backbone_variables`` is
    ``{collection: subtree}`` with the float32 numpy arrays that go under ``backbone`` in each
    collection of the model's variables. Raises :class:`ConversionError` with the full report
    unless every source key is used or skipped with a reason and every leaf is filled (or is one
    of the leaves the format leaves at their initialisation).
    """
    bb = model_cfg.backbone
    if bb.name == "resnet":
        plan = _resnet_plan(state_dict, bb, source)
    elif bb.name == "swin":
        plan = _swin_plan(state_dict, bb, source)
    else:
        raise ValueError(f"no pretrained-backbone table for backbone {bb.name!r}")
    shapes = backbone_target_shapes(model_cfg)
    flat, base = apply_rules(plan.rules, state_dict, shapes, plan.ignored)
    report = BackboneInitReport(
        **{f.name: getattr(base, f.name) for f in dataclasses.fields(base)},
        source_format=plan.source_format,
    )
    report.kept_at_init = {
        t: plan.init_leaves[t] for t in base.unfilled_targets if t in plan.init_leaves
    }
    report.unfilled_targets = [t for t in base.unfilled_targets if t not in report.kept_at_init]
    if not report.ok:
        raise ConversionError(
            f"{source} cannot initialise the {bb.name} backbone of this config:\n{report.format()}"
        )
    for path in report.kept_at_init:
        leaf = path.rsplit("/", 1)[1]
        if leaf not in _LAYER_NORM_INIT:
            raise AssertionError(f"{path}: only LayerNorm scale/bias can be kept at init")
        flat[path] = _LAYER_NORM_INIT[leaf](shapes[path], np.float32)
    return unflatten_paths({_strip_backbone(k): v for k, v in flat.items()}), report


def load_pretrained_backbone(
    path: str, model_cfg: ml_collections.ConfigDict
) -> tuple[dict, BackboneInitReport]:
    """Read a pretrained backbone file (.pth/.pkl) and convert it for ``model_cfg``.

    See :func:`convert_backbone_state_dict` for what is returned and when it raises.
    """
    return convert_backbone_state_dict(load_state_dict(path), model_cfg, source=path)


def _dtype_of(leaf) -> np.dtype:
    return leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype


def merge_backbone(variables: Mapping, backbone_variables: Mapping) -> dict:
    """``variables`` with the ``backbone`` subtree of every collection replaced.

    ``variables`` are the full model's (``{"params": ..., "frozen": ...}``, e.g. from
    ``build_model(cfg).init``); ``backbone_variables`` the output of
    :func:`load_pretrained_backbone`. Both must hold the same collections and leaf paths with the
    same shapes (a :class:`ConversionError` names every path at fault); values take the dtype of
    the leaf they replace. The input is not modified.
    """
    have = {c for c, tree in variables.items() if BACKBONE in tree}
    given = set(backbone_variables)
    problems = [
        f"collection {c!r}: the model has a backbone subtree, the pretrained backbone has none"
        for c in sorted(have - given)
    ] + [
        f"collection {c!r}: given for the backbone, but the model has no {c}/{BACKBONE}"
        for c in sorted(given - have)
    ]
    new_trees = {}
    for c in sorted(have & given):
        old = flatten_paths(variables[c][BACKBONE])
        new = flatten_paths(backbone_variables[c])
        for k in sorted(old.keys() - new.keys()):
            problems.append(f"{c}/{BACKBONE}/{k}: missing from the pretrained backbone")
        for k in sorted(new.keys() - old.keys()):
            problems.append(f"{c}/{BACKBONE}/{k}: not a leaf of the model")
        for k in sorted(old.keys() & new.keys()):
            if tuple(np.shape(old[k])) != tuple(np.shape(new[k])):
                problems.append(
                    f"{c}/{BACKBONE}/{k}: pretrained shape {tuple(np.shape(new[k]))}, "
                    f"model shape {tuple(np.shape(old[k]))}"
                )
        new_trees[c] = unflatten_paths(
            {k: jnp.asarray(new[k], dtype=_dtype_of(old[k])) for k in old if k in new}
        )
    if problems:
        raise ConversionError(
            "the pretrained backbone does not fit the model's variables:\n"
            + "\n".join(f"  {p}" for p in problems)
        )
    merged = {c: dict(tree) for c, tree in variables.items()}
    for c, tree in new_trees.items():
        merged[c][BACKBONE] = tree
    return merged
