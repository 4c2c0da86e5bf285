"""Training losses of OV2Seg: Hungarian matcher, federated class loss, point-sampled mask losses.

* :mod:`~ov2seg_jax.losses.criterion`: :func:`compute_losses` (the entry point), the weight
  dictionary and the weighted total; :mod:`~ov2seg_jax.losses.config` its settings.
* :mod:`~ov2seg_jax.losses.draws`: every random number of the loss, drawn from a key or replayed.
* :mod:`~ov2seg_jax.losses.matcher`: matching costs and the host-side assignment.
* :mod:`~ov2seg_jax.losses.federated`: LVIS frequency weights and the federated category draw.
* :mod:`~ov2seg_jax.losses.point_sampling`: reading maps at points; uncertainty-driven points.

Typical use inside a jitted train step::

    config = CriterionConfig.from_config(cfg.loss)   # or .from_config(cfg.loss, federated=False)
    weights = weight_dict(config, num_aux=len(outputs.aux_outputs))
    losses = compute_losses(outputs, targets, rng, config, class_weights=fed_weights)
    loss = total_loss(losses, weights)
"""

from ov2seg_jax.losses.config import CriterionConfig
from ov2seg_jax.losses.criterion import (
    LOSS_NAMES,
    Targets,
    compute_losses,
    losses_from_draws,
    total_loss,
    weight_dict,
)
from ov2seg_jax.losses.draws import LayerDraws, sample_draws, sample_layer_draws
from ov2seg_jax.losses.federated import (
    fed_category_mask,
    load_lvis_fed_weights,
    sample_fed_priorities,
)
from ov2seg_jax.losses.matcher import MatcherCosts, Matches, hungarian_match, matching_cost
from ov2seg_jax.losses.point_sampling import importance_points, point_sample

__all__ = [
    "LOSS_NAMES",
    "CriterionConfig",
    "LayerDraws",
    "Matches",
    "MatcherCosts",
    "Targets",
    "compute_losses",
    "fed_category_mask",
    "hungarian_match",
    "importance_points",
    "load_lvis_fed_weights",
    "losses_from_draws",
    "matching_cost",
    "point_sample",
    "sample_draws",
    "sample_fed_priorities",
    "sample_layer_draws",
    "total_loss",
    "weight_dict",
]
