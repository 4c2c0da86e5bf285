"""``--mode train``: wire the config's model, classifier, data, criterion and hooks into the loop."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ov2seg_jax.losses.criterion import CriterionConfig, compute_losses, weight_dict
from ov2seg_jax.losses.federated import load_lvis_fed_weights
from ov2seg_jax.train.loop import EvalFn, TrainResult, train


def criterion_config(loss: ml_collections.ConfigDict) -> CriterionConfig:
    return CriterionConfig(
        class_weight=loss.class_weight,
        object_weight=loss.object_weight,
        mask_weight=loss.mask_weight,
        dice_weight=loss.dice_weight,
        num_points=loss.num_points,
        oversample_ratio=loss.oversample_ratio,
        importance_sample_ratio=loss.importance_sample_ratio,
        federated=loss.federated,
        num_fed_classes=loss.num_fed_classes,
        class_loss_factor=loss.fed_factor,
        object_empty_weight=loss.object_empty_weight,
    )


def class_weights(loss: ml_collections.ConfigDict, num_classes: int, resolve) -> np.ndarray | None:
    """The federated sampling weights (LVIS frequency^0.5), or None for the plain class loss."""
    if not loss.federated:
        return None
    weights = load_lvis_fed_weights(resolve(loss.class_frequency_path))
    if weights.shape[0] != num_classes:
        raise ValueError(
            f"{loss.class_frequency_path} has {weights.shape[0]} categories but the model has "
            f"{num_classes} classes; the federated loss needs one weight per class "
            "(set config.loss.federated=False for other vocabularies)"
        )
    return weights


def make_loss_terms_fn(config: ml_collections.ConfigDict, weights: np.ndarray | None):
    """(outputs, targets, rng) -> unweighted loss terms, and the weight of each term."""
    cc = criterion_config(config.loss)
    cw = None if weights is None else jnp.asarray(weights, jnp.float32)
    fn = functools.partial(compute_losses, config=cc, class_weights=cw)
    return fn, weight_dict(cc, num_aux=config.model.decoder.num_layers)


def backbone_init_fn(config: ml_collections.ConfigDict):
    """Load ``config.train.init_backbone`` into fresh variables (None when unset)."""
    path = config.train.init_backbone
    if not path:
        return None

    def init(variables):
        from ov2seg_jax.convert.backbone_init import load_pretrained_backbone, merge_backbone

        backbone, report = load_pretrained_backbone(path, config.model)
        if jax.process_index() == 0:
            print(report.format())
        return merge_backbone(variables, backbone)

    return init


def make_batches(config: ml_collections.ConfigDict):
    """start_batch -> this host's iterator over training batches."""
    from ov2seg_jax.data.pipeline import make_train_iterator

    per_host = config.train.batch_size // jax.process_count()

    def batches(start_batch: int):
        return make_train_iterator(
            config.data,
            batch_size=per_host,
            seed=config.seed,
            start_batch=start_batch,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )

    return batches


def run_training(
    config: ml_collections.ConfigDict,
    workdir: str,
    classifier: np.ndarray,
    *,
    resolve=lambda p: p,
    eval_fn: EvalFn | None = None,
    max_steps: int | None = None,
) -> TrainResult:
    weights = class_weights(config.loss, classifier.shape[0], resolve)
    loss_fn, loss_weights = make_loss_terms_fn(config, weights)
    return train(
        config,
        workdir,
        classifier=classifier,
        loss_terms_fn=loss_fn,
        loss_weights=loss_weights,
        batches=make_batches(config),
        eval_fn=eval_fn,
        init_fn=backbone_init_fn(config),
        max_steps=max_steps,
    )
