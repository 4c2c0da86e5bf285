"""Hungarian matching of predicted queries to ground-truth instances (the original's matcher).

For every image the cost of giving target ``n`` to query ``q`` is

    cost[q, n] = cost_class * -sqrt(sigmoid(cls[q, label_n]) * softmax(obj[q])[0])
               + cost_mask  * mean_p BCE(mask_q(p), target_n(p))
               + cost_dice  * (1 - (2 sum_p s_q t_n + 1) / (sum_p s_q + sum_p t_n + 1)),

where ``p`` runs over ``P`` uniform points drawn once per image and shared by all its masks,
``mask_q(p)`` is the predicted mask logit read at ``p``, ``s_q = sigmoid(mask_q(p))`` and
``t_n(p)`` the bilinearly read target mask (a value in [0, 1], not re-binarised). The original
stores an object cost weight too but never uses it; there is none here.

The assignment is solved on the host by ``scipy.optimize.linear_sum_assignment`` through
``jax.pure_callback`` (the cost carries no gradient). Targets come padded to a static ``N`` with a
validity mask; padded targets are removed before solving, so they are never matched. The answer
is static-shaped: ``N`` slots per image, the first ``min(Q, n_valid)`` of them valid and sorted by
query index (the order in which the original concatenates its matched pairs), the rest invalid.

Non-finite costs are replaced before solving as the original does for infinities (+inf by a value
above any finite assignment, -inf by one below); NaN is treated as +inf so that a diverged step
still returns a matching and the non-finite loss is left for the trainer to report.

Under ``jit`` with arrays sharded over several devices the callback receives the whole cost
array; per-device matching is obtained by calling the loss inside ``shard_map``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from ov2seg_jax.losses.point_sampling import point_sample

_HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class MatcherCosts:
    """Weights of the three matching costs (the original passes the loss weights)."""

    class_weight: float
    mask_weight: float
    dice_weight: float


class Matches(NamedTuple):
    """Matched (query, target) pairs of every image, padded to N slots.

    pred_index (B, N) int32: query of each slot (0 in invalid slots).
    target_index (B, N) int32: target of each slot, an index into the padded targets (0 if invalid).
    valid (B, N) bool: slot holds a pair; valid slots come first, sorted by query index.
    cost (B, Q, N) float32: the cost matrix that was solved (padded columns included).
    """

    pred_index: jax.Array
    target_index: jax.Array
    valid: jax.Array
    cost: jax.Array


# --------------------------------------------------------------------------------------------
# Costs
# --------------------------------------------------------------------------------------------


def bce_with_logits(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Elementwise binary cross-entropy with logits, as PyTorch writes it: (1 - t) x - log σ(x)."""
    return (1 - targets) * logits - jax.nn.log_sigmoid(logits)


def class_cost(pred_logits: jax.Array, pred_object_logits: jax.Array, labels: jax.Array):
    """(B, Q, N) ``-sqrt(sigmoid(cls[label]) * p_object)``; labels are clamped into [0, C)."""
    num_classes = pred_logits.shape[-1] - 1
    idx = jnp.clip(labels.astype(jnp.int32), 0, num_classes - 1)[:, None, :]
    cls = jnp.take_along_axis(pred_logits.astype(jnp.float32), idx, axis=-1)  # (B, Q, N)
    p_object = jax.nn.softmax(pred_object_logits.astype(jnp.float32), axis=-1)[..., 0:1]
    return -jnp.sqrt(jax.nn.sigmoid(cls) * p_object)


def mask_costs(point_logits: jax.Array, point_targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Pairwise point BCE and dice costs.

    point_logits (B, Q, P): predicted logits at the image's points; point_targets (B, N, P).
    Returns (cost_mask, cost_dice), each (B, Q, N).
    """
    num_points = point_logits.shape[-1]
    pos = bce_with_logits(point_logits, jnp.ones((), point_logits.dtype))
    neg = bce_with_logits(point_logits, jnp.zeros((), point_logits.dtype))
    cost_mask = (
        jnp.einsum("bqp,bnp->bqn", pos, point_targets, precision=_HIGHEST)
        + jnp.einsum("bqp,bnp->bqn", neg, 1 - point_targets, precision=_HIGHEST)
    ) / num_points
    probs = jax.nn.sigmoid(point_logits)
    numerator = 2 * jnp.einsum("bqp,bnp->bqn", probs, point_targets, precision=_HIGHEST)
    denominator = probs.sum(-1)[:, :, None] + point_targets.sum(-1)[:, None, :]
    cost_dice = 1 - (numerator + 1) / (denominator + 1)
    return cost_mask, cost_dice


def matching_cost(
    pred_logits: jax.Array,
    pred_object_logits: jax.Array,
    pred_masks: jax.Array,
    labels: jax.Array,
    target_masks: jax.Array,
    points: jax.Array,
    costs: MatcherCosts,
) -> jax.Array:
    """The (B, Q, N) cost matrix of every image (padded targets included, masked later).

    pred_logits (B, Q, C+1), pred_object_logits (B, Q, 2), pred_masks (B, Q, h, w),
    labels (B, N), target_masks (B, N, H, W), points (B, P, 2): the image's shared points.
    """
    n = target_masks.shape[1]
    q = pred_masks.shape[1]
    pts = points[:, None].astype(jnp.float32)
    out = point_sample(pred_masks, jnp.broadcast_to(pts, (pts.shape[0], q, *pts.shape[2:])))
    tgt = point_sample(target_masks, jnp.broadcast_to(pts, (pts.shape[0], n, *pts.shape[2:])))
    cost_mask, cost_dice = mask_costs(out.astype(jnp.float32), tgt.astype(jnp.float32))
    cost = (
        costs.mask_weight * cost_mask
        + costs.class_weight * class_cost(pred_logits, pred_object_logits, labels)
        + costs.dice_weight * cost_dice
    )
    return cost.astype(jnp.float32)


# --------------------------------------------------------------------------------------------
# Assignment (host)
# --------------------------------------------------------------------------------------------


def finite_cost(cost: np.ndarray) -> np.ndarray:
    """Replace non-finite entries so that scipy can solve the matrix (see the module notes)."""
    cost = np.array(cost, dtype=np.float64)
    finite = np.isfinite(cost)
    if finite.all():
        return cost
    cost[np.isnan(cost)] = np.inf
    if not finite.any():
        return np.zeros_like(cost)
    values = cost[finite]
    lo, hi = values.min(), values.max()
    m = min(cost.shape)
    margin = m * (hi - lo + abs(hi) + abs(lo) + 1)
    cost[np.isposinf(cost)] = hi + (m - 1) * (hi - lo) + margin
    cost[np.isneginf(cost)] = lo + (m - 1) * (lo - hi) - margin
    return cost


def assign_padded(cost: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal assignment of each image's valid targets to queries (host, numpy).

    cost (B, Q, N), valid (B, N) bool. Returns ``pred_index``, ``target_index`` (B, N) int32 and
    ``matched`` (B, N) bool laid out as :class:`Matches` describes.
    """
    cost = np.asarray(cost)
    valid = np.asarray(valid, bool)
    b, _, n = cost.shape
    pred = np.zeros((b, n), np.int32)
    tgt = np.zeros((b, n), np.int32)
    matched = np.zeros((b, n), bool)
    for i in range(b):
        columns = np.flatnonzero(valid[i])
        if columns.size == 0:
            continue
        rows, cols = linear_sum_assignment(finite_cost(cost[i][:, columns]))
        order = np.argsort(rows, kind="stable")
        k = rows.size
        pred[i, :k] = rows[order]
        tgt[i, :k] = columns[cols[order]]
        matched[i, :k] = True
    return pred, tgt, matched


def solve_matching(cost: jax.Array, valid: jax.Array) -> Matches:
    """Solve ``cost`` (B, Q, N) for the valid (B, N) targets on the host; jit-compatible."""
    b, _, n = cost.shape
    cost = jax.lax.stop_gradient(cost.astype(jnp.float32))
    shapes = (
        jax.ShapeDtypeStruct((b, n), jnp.int32),
        jax.ShapeDtypeStruct((b, n), jnp.int32),
        jax.ShapeDtypeStruct((b, n), jnp.bool_),
    )
    pred, tgt, matched = jax.pure_callback(
        assign_padded, shapes, cost, valid.astype(jnp.bool_), vmap_method="sequential"
    )
    return Matches(pred, tgt, matched, cost)


def hungarian_match(
    pred_logits: jax.Array,
    pred_object_logits: jax.Array,
    pred_masks: jax.Array,
    labels: jax.Array,
    target_masks: jax.Array,
    target_valid: jax.Array,
    points: jax.Array,
    costs: MatcherCosts,
) -> Matches:
    """Match one decoder layer's predictions to the padded targets (shapes as
    :func:`matching_cost`; ``target_valid`` (B, N) bool)."""
    cost = matching_cost(
        jax.lax.stop_gradient(pred_logits),
        jax.lax.stop_gradient(pred_object_logits),
        jax.lax.stop_gradient(pred_masks),
        labels,
        target_masks,
        points,
        costs,
    )
    return solve_matching(cost, target_valid)


def matched_query_classes(matches: Matches, labels: jax.Array, num_queries: int, no_object: int):
    """Per-query target class (B, Q) int32: the matched target's label, ``no_object`` elsewhere."""
    b = labels.shape[0]
    rows = jnp.arange(b)[:, None]
    slot_labels = jnp.take_along_axis(labels.astype(jnp.int32), matches.target_index, axis=1)
    # Invalid slots write out of bounds and are dropped.
    query = jnp.where(matches.valid, matches.pred_index, num_queries)
    classes = jnp.full((b, num_queries), no_object, jnp.int32)
    return classes.at[rows, query].set(slot_labels, mode="drop")
