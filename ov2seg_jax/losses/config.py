"""Settings of the training loss (:class:`CriterionConfig`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ov2seg_jax.config_fields import from_section
from ov2seg_jax.losses.matcher import MatcherCosts
from ov2seg_jax.losses.point_sampling import num_candidate_points, num_importance_points


@dataclasses.dataclass(frozen=True)
class CriterionConfig:
    """Loss settings: the fields of ``config.loss`` of the same names (:meth:`from_config`);
    their values, the original's LVIS training configuration, live in ``configs/``.

    The weights are both the matching costs and the loss weights, as in the original
    (``object_weight`` only weighs ``loss_object_ce``: the matcher has no object cost).
    ``federated=False`` computes the class loss on all C classes (small custom vocabularies).
    """

    class_weight: float
    object_weight: float
    mask_weight: float
    dice_weight: float
    num_points: int
    oversample_ratio: float
    importance_sample_ratio: float
    federated: bool
    num_fed_classes: int
    class_loss_factor: float
    object_empty_weight: float

    @classmethod
    def from_config(cls, loss: Mapping, **overrides: Any) -> CriterionConfig:
        """From ``config.loss`` (a missing field is an error naming it); ``overrides`` replace
        fields (e.g. a test's fewer points). Other fields of the section are for other readers
        (``class_frequency_path``: :func:`ov2seg_jax.train.run.class_weights`)."""
        return from_section(cls, loss, "config.loss", **overrides)

    def __post_init__(self):
        if self.num_points <= 0:
            raise ValueError(f"CriterionConfig.num_points must be positive, got {self.num_points}")
        if self.oversample_ratio < 1:
            raise ValueError(
                f"CriterionConfig.oversample_ratio must be >= 1, got {self.oversample_ratio}"
            )
        if not 0 <= self.importance_sample_ratio <= 1:
            raise ValueError(
                "CriterionConfig.importance_sample_ratio must be in [0, 1], got "
                f"{self.importance_sample_ratio}"
            )
        if self.federated and self.num_fed_classes <= 0:
            raise ValueError(
                f"CriterionConfig.num_fed_classes must be positive, got {self.num_fed_classes}"
            )

    @property
    def matcher_costs(self) -> MatcherCosts:
        return MatcherCosts(self.class_weight, self.mask_weight, self.dice_weight)

    @property
    def num_candidates(self) -> int:
        """Uniform candidate points per matched mask."""
        return num_candidate_points(self.num_points, self.oversample_ratio)

    @property
    def num_important(self) -> int:
        """Points kept from the candidates by uncertainty."""
        return num_importance_points(self.num_points, self.importance_sample_ratio)
