"""The random numbers of the training loss, drawn apart from their use so they can be replayed.

One :class:`LayerDraws` per decoder layer holds every random number that layer's loss uses: the
matcher's shared points per image, the federated-draw priorities and the candidate and uniform
points of the mask losses for each of the N target slots of each image.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ov2seg_jax.losses.config import CriterionConfig
from ov2seg_jax.losses.federated import gumbel_priorities


class LayerDraws(NamedTuple):
    """Every random number one decoder layer's loss uses (B images, N target slots, C classes).

    matcher_points (B, P, 2): uniform points shared by all masks of an image in the matcher.
    fed_priorities (C,): federated-draw priorities (shape (0,) when the loss is not federated).
    candidate_points (B, N, S, 2): uniform candidates per slot, S = int(P * oversample_ratio).
    random_points (B, N, P - K, 2): uniform points per slot, K = int(P * importance_sample_ratio).
    """

    matcher_points: jax.Array
    fed_priorities: jax.Array
    candidate_points: jax.Array
    random_points: jax.Array


def sample_draws(
    key: jax.Array,
    num_layers: int,
    *,
    batch: int,
    num_targets: int,
    num_classes: int,
    config: CriterionConfig,
    class_weights: jax.Array | None = None,
) -> tuple[LayerDraws, ...]:
    """Draw the random numbers of ``num_layers`` layers from one key.

    ``class_weights`` (C,) are the federated sampling weights (``None`` = uniform). Each layer's
    numbers come from one uniform draw of its own key, cut into the pieces: one random-bits
    computation per layer to compile instead of one per piece, and no layer's draws need to be
    alive while another layer is computed (the candidate points are the large part:
    B * N * 3P * 2 floats). The federated priorities turn their share into Gumbel noise.
    """
    p = config.num_points
    shapes = {
        "matcher_points": (batch, p, 2),
        "fed_priorities": (num_classes,) if config.federated else (0,),
        "candidate_points": (batch, num_targets, config.num_candidates, 2),
        "random_points": (batch, num_targets, p - config.num_important, 2),
    }
    sizes = [math.prod(shape) for shape in shapes.values()]
    tiny = jnp.finfo(jnp.float32).tiny
    layers = []
    for layer_key in jax.random.split(key, num_layers):
        row = jax.random.uniform(layer_key, (sum(sizes),), jnp.float32, minval=tiny)
        pieces, start = {}, 0
        for (name, shape), size in zip(shapes.items(), sizes, strict=True):
            pieces[name] = row[start : start + size].reshape(shape)
            start += size
        if config.federated:
            gumbel = -jnp.log(-jnp.log(pieces["fed_priorities"]))
            pieces["fed_priorities"] = gumbel_priorities(gumbel, class_weights)
        layers.append(LayerDraws(**pieces))
    return tuple(layers)


def sample_layer_draws(
    key: jax.Array,
    *,
    batch: int,
    num_targets: int,
    num_classes: int,
    config: CriterionConfig,
    class_weights: jax.Array | None = None,
) -> LayerDraws:
    """Draw one layer's random numbers (arguments as :func:`sample_draws`)."""
    return sample_draws(
        key,
        1,
        batch=batch,
        num_targets=num_targets,
        num_classes=num_classes,
        config=config,
        class_weights=class_weights,
    )[0]


def check_draws(draws: LayerDraws, layer: int, b: int, n: int, c: int, config: CriterionConfig):
    p = config.num_points
    expected = {
        "matcher_points": (b, p, 2),
        "fed_priorities": (c,) if config.federated else None,
        "candidate_points": (b, n, config.num_candidates, 2),
        "random_points": (b, n, p - config.num_important, 2),
    }
    for name, shape in expected.items():
        got = tuple(getattr(draws, name).shape)
        if shape is not None and got != shape:
            raise ValueError(f"draws[{layer}].{name} must have shape {shape}, got {got}")
