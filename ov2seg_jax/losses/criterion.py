"""The training loss of OV2Seg (the original's ``SetCriterion`` with its matcher), every layer.

For each decoder layer (the final one, then ``outputs.aux_outputs`` in order) the queries are
matched to the targets (:mod:`~ov2seg_jax.losses.matcher`) and four unweighted terms computed:

* ``loss_ce``: sigmoid cross-entropy of the C real class logits against the one-hot target class,
  only on matched queries and only on the chosen categories (:mod:`~ov2seg_jax.losses.federated`
  when ``federated``; otherwise all C classes, each scaled by ``class_weights`` or 1), summed,
  times ``class_loss_factor`` (1.7) and divided by B·Q.
* ``loss_object_ce``: 2-way cross-entropy of the objectness logits (index 0 = object for matched
  queries, 1 = no object otherwise) with class weights (1, ``object_empty_weight``), averaged by
  the weights of the targets (PyTorch's weighted ``cross_entropy`` mean).
* ``loss_mask`` / ``loss_dice``: per matched pair, BCE averaged over ``num_points`` points and the
  dice loss over the same points, summed over pairs and divided by the number of target masks.
  The points are PointRend's: the ``int(0.75 P)`` most uncertain of ``int(3 P)`` uniform
  candidates (read on the predicted mask) plus ``P - int(0.75 P)`` uniform points.

Terms of aux layer ``i`` carry the suffix ``_i``. :func:`weight_dict` gives the original's weights
(class 2, object 2, mask 5, dice 5 for every layer); :func:`total_loss` applies them.

**Randomness.** Every random number comes from :class:`~ov2seg_jax.losses.draws.LayerDraws`,
one per layer, made by :func:`~ov2seg_jax.losses.draws.sample_draws` from a ``jax.random`` key.
:func:`compute_losses` draws them itself; :func:`losses_from_draws` takes them as arguments,
which is how the parity check replays the original's recorded draws. Shapes are static: targets are padded to N and the matched pairs fill
N slots per image with a validity mask, so the candidate points are drawn for all N slots.

**Normalisation over devices.** The original divides the mask terms by the number of target masks
summed over all devices divided by the number of devices (at least 1), and averages gradients over
devices. When the loss is computed once on the global batch (``jit`` over a sharded batch) the
equivalent is the global count, which is what the default gives. Inside ``shard_map`` or another
per-device computation pass ``axis_name`` (the count is then ``psum(count) / axis_size``, as the
original) or pass ``num_masks`` directly. ``loss_ce`` and ``loss_object_ce`` are per-device means
in the original; on a global batch ``loss_ce`` is the same quantity, ``loss_object_ce`` is one
weighted mean over all images instead of a mean of per-device weighted means, and the federated
categories are drawn once for the whole batch instead of once per device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ov2seg_jax.losses.config import CriterionConfig
from ov2seg_jax.losses.draws import LayerDraws, check_draws, sample_draws
from ov2seg_jax.losses.federated import fed_category_mask
from ov2seg_jax.losses.matcher import (
    Matches,
    bce_with_logits,
    hungarian_match,
    matched_query_classes,
)
from ov2seg_jax.losses.point_sampling import importance_points, point_sample
from ov2seg_jax.models.outputs import HeadOutputs, ModelOutputs

LOSS_NAMES = ("loss_ce", "loss_object_ce", "loss_mask", "loss_dice")


class Targets(NamedTuple):
    """Padded ground truth of a batch.

    labels (B, N) int32: class in [0, C) for valid entries (anything for padding); a label out
      of range cannot be reported under ``jit`` (its one-hot row would be all zero).
    masks (B, N, H, W) bool/uint8/float: instance masks at the padded image resolution.
    valid (B, N) bool: which entries are real instances.
    """

    labels: jax.Array
    masks: jax.Array
    valid: jax.Array


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def layer_heads(outputs: ModelOutputs) -> tuple[HeadOutputs, ...]:
    """The layers the loss covers: the final predictions, then ``aux_outputs`` in order."""
    final = HeadOutputs(outputs.pred_logits, outputs.pred_object_logits, outputs.pred_masks)
    return (final, *outputs.aux_outputs)


def _check_heads(heads: Sequence[HeadOutputs]) -> tuple[int, int, int]:
    """Shapes of every layer must agree; returns (B, Q, C)."""
    first = heads[0]
    if first.pred_logits.ndim != 3 or first.pred_logits.shape[-1] < 2:
        raise ValueError(f"outputs.pred_logits must be (B, Q, C+1), got {first.pred_logits.shape}")
    b, q, c1 = first.pred_logits.shape
    expected = {
        "pred_logits": (b, q, c1),
        "pred_object_logits": (b, q, 2),
    }
    for i, head in enumerate(heads):
        where = "outputs" if i == 0 else f"outputs.aux_outputs[{i - 1}]"
        for name, shape in expected.items():
            if tuple(getattr(head, name).shape) != shape:
                raise ValueError(
                    f"{where}.{name} must have shape {shape}, got {getattr(head, name).shape}"
                )
        if head.pred_masks.ndim != 4 or tuple(head.pred_masks.shape[:2]) != (b, q):
            raise ValueError(
                f"{where}.pred_masks must have shape ({b}, {q}, h, w), got {head.pred_masks.shape}"
            )
    return b, q, c1 - 1


def _check_label_range(labels: jax.Array, valid: jax.Array, num_classes: int) -> None:
    """Valid labels must lie in [0, C); checked when the values are known (not under ``jit``)."""
    try:
        lab, ok = np.asarray(labels), np.asarray(valid, bool)
    except jax.errors.TracerArrayConversionError:
        return
    bad = ok & ((lab < 0) | (lab >= num_classes))
    if bad.any():
        b, n = np.argwhere(bad)[0]
        raise ValueError(
            f"targets['labels'][{b}, {n}] = {lab[b, n]} is outside [0, {num_classes}) for a valid "
            "target"
        )


def as_targets(
    targets: Mapping[str, jax.Array] | Targets,
    batch: int | None = None,
    num_classes: int | None = None,
) -> Targets:
    """Validate the padded targets (``labels``, ``masks``, ``valid``) and return :class:`Targets`.

    Shapes are always checked; label values (in [0, ``num_classes``) where valid) only when they
    are concrete, i.e. outside ``jit``.
    """
    if not isinstance(targets, Targets):
        missing = {"labels", "masks", "valid"} - set(targets)
        if missing:
            raise ValueError(f"targets lack the field(s) {sorted(missing)}")
        targets = Targets(targets["labels"], targets["masks"], targets["valid"])
    labels, masks, valid = (jnp.asarray(x) for x in targets)
    if labels.ndim != 2:
        raise ValueError(f"targets['labels'] must be (B, N), got shape {labels.shape}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"targets['labels'] must be integer, got {labels.dtype}")
    if masks.ndim != 4 or tuple(masks.shape[:2]) != tuple(labels.shape):
        raise ValueError(
            f"targets['masks'] must be (B, N, H, W) with (B, N) = {labels.shape}, got {masks.shape}"
        )
    if tuple(valid.shape) != tuple(labels.shape):
        raise ValueError(f"targets['valid'] must have shape {labels.shape}, got {valid.shape}")
    if batch is not None and labels.shape[0] != batch:
        raise ValueError(f"targets have batch size {labels.shape[0]}, the outputs {batch}")
    if num_classes is not None:
        _check_label_range(labels, valid, num_classes)
    return Targets(labels.astype(jnp.int32), masks, valid.astype(jnp.bool_))


def normalised_num_masks(
    valid: jax.Array, num_masks: jax.Array | float | None = None, axis_name: str | None = None
) -> jax.Array:
    """The divisor of the mask terms: the number of target masks, at least 1 (see module notes).

    ``num_masks`` given: used as is. Otherwise the count of ``valid``; with ``axis_name`` it is
    summed over that axis and divided by its size, as the original averages over devices.
    """
    if num_masks is not None:
        count = jnp.asarray(num_masks, jnp.float32)
    else:
        count = jnp.sum(valid).astype(jnp.float32)
        if axis_name is not None:
            count = jax.lax.psum(count, axis_name) / jax.lax.psum(1.0, axis_name)
    return jax.lax.stop_gradient(jnp.maximum(count, 1.0))


# --------------------------------------------------------------------------------------------
# Random draws
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Loss terms
# --------------------------------------------------------------------------------------------


def class_losses(
    pred_logits: jax.Array,
    pred_object_logits: jax.Array,
    target_classes: jax.Array,
    category_weight: jax.Array,
    config: CriterionConfig,
) -> tuple[jax.Array, jax.Array]:
    """``(loss_ce, loss_object_ce)``.

    pred_logits (B, Q, C+1), pred_object_logits (B, Q, 2), target_classes (B, Q) in [0, C]
    (C = unmatched), category_weight (C,) per-class factor of the class loss (the federated 0/1
    mask, or the custom weights).
    """
    b, q, c1 = pred_logits.shape
    c = c1 - 1
    logits = pred_logits.astype(jnp.float32)[..., :c]
    onehot = jax.nn.one_hot(target_classes, c1, dtype=jnp.float32)[..., :c]
    matched = target_classes != c
    weight = category_weight.astype(jnp.float32)[None, None, :] * matched[..., None]
    loss_ce = config.class_loss_factor * jnp.sum(bce_with_logits(logits, onehot) * weight) / (b * q)

    obj_target = jnp.where(matched, 0, 1)
    log_probs = jax.nn.log_softmax(pred_object_logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(log_probs, obj_target[..., None], axis=-1)[..., 0]
    w = jnp.where(matched, 1.0, config.object_empty_weight)
    loss_object_ce = jnp.sum(w * nll) / jnp.sum(w)
    return loss_ce, loss_object_ce


def mask_losses(
    pred_masks: jax.Array,
    target_masks: jax.Array,
    matches: Matches,
    candidate_points: jax.Array,
    random_points: jax.Array,
    num_masks: jax.Array,
    config: CriterionConfig,
) -> tuple[jax.Array, jax.Array]:
    """``(loss_mask, loss_dice)`` of the matched pairs at importance-sampled points.

    pred_masks (B, Q, h, w) logits, target_masks (B, N, H, W), matches with (B, N) slots,
    candidate_points (B, N, S, 2), random_points (B, N, P-K, 2), num_masks the divisor.
    """
    points = importance_points(
        pred_masks, matches.pred_index, candidate_points, random_points, config.num_important
    )
    labels = jax.lax.stop_gradient(point_sample(target_masks, points, matches.target_index))
    logits = point_sample(pred_masks, points, matches.pred_index).astype(jnp.float32)
    labels = labels.astype(jnp.float32)
    bce = jnp.mean(bce_with_logits(logits, labels), axis=-1)
    probs = jax.nn.sigmoid(logits)
    numerator = 2 * jnp.sum(probs * labels, axis=-1)
    denominator = jnp.sum(probs, axis=-1) + jnp.sum(labels, axis=-1)
    dice = 1 - (numerator + 1) / (denominator + 1)
    zero = jnp.zeros((), jnp.float32)
    loss_mask = jnp.sum(jnp.where(matches.valid, bce, zero)) / num_masks
    loss_dice = jnp.sum(jnp.where(matches.valid, dice, zero)) / num_masks
    return loss_mask, loss_dice


def layer_losses(
    head: HeadOutputs,
    targets: Targets,
    draws: LayerDraws,
    config: CriterionConfig,
    *,
    class_weights: jax.Array | None,
    num_masks: jax.Array,
) -> tuple[dict[str, jax.Array], Matches, jax.Array]:
    """One layer: match, then the four terms. Returns (terms without suffix, matches, the (C,)
    category weights the class loss used)."""
    b, q, c1 = head.pred_logits.shape
    c = c1 - 1
    matches = hungarian_match(
        head.pred_logits,
        head.pred_object_logits,
        head.pred_masks,
        targets.labels,
        targets.masks,
        targets.valid,
        draws.matcher_points,
        config.matcher_costs,
    )
    target_classes = matched_query_classes(matches, targets.labels, q, c)
    if config.federated:
        category = fed_category_mask(target_classes, draws.fed_priorities, config.num_fed_classes)
        category = category.astype(jnp.float32)
    elif class_weights is not None:
        category = jnp.asarray(class_weights, jnp.float32)
    else:
        category = jnp.ones((c,), jnp.float32)
    loss_ce, loss_object_ce = class_losses(
        head.pred_logits, head.pred_object_logits, target_classes, category, config
    )
    loss_mask, loss_dice = mask_losses(
        head.pred_masks,
        targets.masks,
        matches,
        draws.candidate_points,
        draws.random_points,
        num_masks,
        config,
    )
    terms = dict(zip(LOSS_NAMES, (loss_ce, loss_object_ce, loss_mask, loss_dice), strict=True))
    return terms, matches, category


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def loss_suffix(layer: int) -> str:
    """Name suffix of layer ``layer`` (0 = final: none; ``i + 1`` = aux layer i: ``_i``)."""
    return "" if layer == 0 else f"_{layer - 1}"


def losses_from_draws(
    outputs: ModelOutputs,
    targets: Mapping[str, jax.Array] | Targets,
    draws: Sequence[LayerDraws],
    config: CriterionConfig,
    *,
    class_weights: jax.Array | None = None,
    num_masks: jax.Array | float | None = None,
    axis_name: str | None = None,
) -> tuple[dict[str, jax.Array], tuple[Matches, ...]]:
    """Unweighted loss terms of every layer with the given random draws.

    ``draws[0]`` is the final layer's, ``draws[i + 1]`` aux layer i's. Returns the terms
    (``loss_ce, loss_object_ce, loss_mask, loss_dice`` then ``..._0`` etc.) and each layer's
    :class:`Matches`. Other arguments as :func:`compute_losses`.
    """
    heads = layer_heads(outputs)
    b, q, c = _check_heads(heads)
    tgt = as_targets(targets, b, c)
    n = tgt.labels.shape[1]
    if len(draws) != len(heads):
        raise ValueError(f"got draws for {len(draws)} layers, the outputs have {len(heads)}")
    for i, d in enumerate(draws):
        check_draws(d, i, b, n, c, config)
    if class_weights is not None and tuple(jnp.shape(class_weights)) != (c,):
        raise ValueError(f"class_weights must have shape ({c},), got {jnp.shape(class_weights)}")
    divisor = normalised_num_masks(tgt.valid, num_masks, axis_name)
    losses: dict[str, jax.Array] = {}
    all_matches = []
    for layer, (head, d) in enumerate(zip(heads, draws, strict=True)):
        terms, matches, _ = layer_losses(
            head, tgt, d, config, class_weights=class_weights, num_masks=divisor
        )
        losses.update({k + loss_suffix(layer): v for k, v in terms.items()})
        all_matches.append(matches)
    return losses, tuple(all_matches)


def compute_losses(
    outputs: ModelOutputs,
    targets: Mapping[str, jax.Array] | Targets,
    rng: jax.Array,
    config: CriterionConfig,
    *,
    class_weights: jax.Array | None = None,
    num_masks: jax.Array | float | None = None,
    axis_name: str | None = None,
) -> dict[str, jax.Array]:
    """Unweighted loss terms of the final layer and every aux layer (jit-compatible).

    Args:
      outputs: model outputs; ``pred_logits`` (B, Q, C+1), ``pred_object_logits`` (B, Q, 2),
        ``pred_masks`` (B, Q, h, w), ``aux_outputs`` the earlier layers.
      targets: ``{"labels": (B, N) int, "masks": (B, N, H, W), "valid": (B, N) bool}``, masks at
        the padded image resolution; padded entries are never matched nor counted.
      rng: ``jax.random`` key for every draw of every layer.
      config: :class:`CriterionConfig`.
      class_weights: (C,) federated sampling weights (e.g. :func:`load_lvis_fed_weights`; ``None``
        = uniform) or, with ``federated=False``, per-class factors of the class loss (``None`` = 1).
      num_masks: the mask-loss divisor to use instead of counting ``valid`` (e.g. a global count).
      axis_name: count the target masks over this mapped axis, as the original over devices.

    Returns:
      ``{"loss_ce", "loss_object_ce", "loss_mask", "loss_dice", "loss_ce_0", ...}`` float32
      scalars; aux layer i's terms end in ``_i``.
    """
    heads = layer_heads(outputs)
    b, _, c = _check_heads(heads)
    n = as_targets(targets, b).labels.shape[1]
    draws = sample_draws(
        rng,
        len(heads),
        batch=b,
        num_targets=n,
        num_classes=c,
        config=config,
        class_weights=class_weights,
    )
    losses, _ = losses_from_draws(
        outputs,
        targets,
        draws,
        config,
        class_weights=class_weights,
        num_masks=num_masks,
        axis_name=axis_name,
    )
    return losses


def weight_dict(config: CriterionConfig, num_aux: int) -> dict[str, float]:
    """Loss weights of the final layer and ``num_aux`` aux layers, named as the loss terms."""
    base = {
        "loss_object_ce": config.object_weight,
        "loss_ce": config.class_weight,
        "loss_mask": config.mask_weight,
        "loss_dice": config.dice_weight,
    }
    weights = dict(base)
    for i in range(num_aux):
        weights.update({f"{k}_{i}": v for k, v in base.items()})
    return weights


def total_loss(losses: Mapping[str, jax.Array], weights: Mapping[str, float]) -> jax.Array:
    """Weighted sum of the terms named in ``weights`` (others are ignored, as the original does).

    Raises if a weighted term is missing (e.g. a weight dict built for another number of layers).
    """
    missing = sorted(set(weights) - set(losses))
    if missing:
        raise ValueError(f"loss terms {missing} have weights but were not computed")
    return sum(weights[k] * losses[k] for k in weights)
