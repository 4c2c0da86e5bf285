"""Federated choice of the categories the sigmoid class loss is computed on (LVIS-style).

With a long-tailed vocabulary of C categories, the class loss of a batch only looks at a subset of
them: every class that occurs among the per-query targets (the matched labels, plus the
"no object" index C as soon as one query is unmatched), topped up to ``num_sample`` entries with
categories drawn without replacement with probability proportional to a weight. For LVIS the
weight is ``image_count ** 0.5`` of the training split, with rare categories set to 0 (never drawn
unless they occur). The no-object index counts toward ``num_sample`` but is never drawn, and it is
not a class of the loss. If the occurring classes already number ``num_sample`` or more, nothing
is drawn.

The draw is split in two so that it can be replayed: :func:`sample_fed_priorities` makes the random
part (Gumbel-perturbed log weights; the top ``k`` of them are a draw of ``k`` categories without
replacement with probabilities proportional to the weights), :func:`fed_category_mask` combines it
with the occurring classes. A category with priority ``-inf`` is never drawn.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np


def load_lvis_fed_weights(path: str, power: float = 0.5) -> np.ndarray:
    """Sampling weights (C,) float32 from an LVIS ``*_cat_info.json`` (a list of categories).

    Categories sorted by ``id``; weight ``image_count ** power``, 0 for ``frequency == "r"``; the
    counts are converted to float32 before the power, as the original does.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"LVIS category info not found: {path}")
    with open(path) as f:
        try:
            cats = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(cats, list) or not cats:
        raise ValueError(f"{path}: expected a non-empty list of categories")
    counts = []
    for i, c in enumerate(
        sorted(cats, key=lambda c: c.get("id", -1) if isinstance(c, dict) else -1)
    ):
        if not isinstance(c, dict) or not {"id", "image_count", "frequency"} <= c.keys():
            raise ValueError(f"{path}: category #{i} lacks one of 'id', 'image_count', 'frequency'")
        counts.append(0 if c["frequency"] == "r" else c["image_count"])
    return np.asarray(counts, np.float32) ** np.float32(power)


def gumbel_priorities(gumbel: jax.Array, weights: jax.Array | None) -> jax.Array:
    """Priorities (C,) float32 from Gumbel noise (C,): ``log(weight) + noise``, ``-inf`` where the
    weight is <= 0; ``weights=None`` means uniform."""
    gumbel = jnp.asarray(gumbel, jnp.float32)
    if weights is None:
        return gumbel
    w = jnp.asarray(weights, jnp.float32)
    safe = jnp.where(w > 0, w, 1.0)
    return jnp.where(w > 0, jnp.log(safe) + gumbel, -jnp.inf)


def sample_fed_priorities(key: jax.Array, weights: jax.Array | None, num_classes: int) -> jax.Array:
    """Random priorities (C,) float32 for :func:`fed_category_mask` (see :func:`gumbel_priorities`).

    ``weights`` (C,) non-negative, or ``None`` for uniform weights.
    """
    return gumbel_priorities(jax.random.gumbel(key, (num_classes,), jnp.float32), weights)


def fed_category_mask(target_classes: jax.Array, priorities: jax.Array, num_sample: int):
    """Which of the C classes the class loss covers: (C,) bool.

    target_classes (B, Q) int in [0, C] (C = no object); priorities (C,) from
    :func:`sample_fed_priorities` (or a replay: finite for the categories to draw, ``-inf`` else).
    """
    num_classes = priorities.shape[0]
    occurring = jnp.zeros((num_classes + 1,), bool).at[target_classes.reshape(-1)].set(True)
    need = jnp.maximum(num_sample - occurring.sum(), 0)
    candidates = jnp.where(occurring[:num_classes], -jnp.inf, priorities.astype(jnp.float32))
    order = jnp.argsort(-candidates)
    rank = jnp.zeros((num_classes,), jnp.int32).at[order].set(jnp.arange(num_classes))
    drawn = (rank < need) & jnp.isfinite(candidates)
    return occurring[:num_classes] | drawn
