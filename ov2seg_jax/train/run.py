"""``--mode train``: wire the config's model, classifier, data, criterion and hooks into the loop."""

from __future__ import annotations

import functools
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ov2seg_jax.losses.criterion import CriterionConfig, compute_losses, weight_dict
from ov2seg_jax.losses.federated import load_lvis_fed_weights
from ov2seg_jax.train import distributed
from ov2seg_jax.train.loop import EvalFn, TrainResult, train


def class_weights(
    config: ml_collections.ConfigDict, num_classes: int, resolve
) -> np.ndarray | None:
    """The federated sampling weights, or None for the plain class loss.

    ``loss.class_frequency_path`` set: an LVIS ``*_cat_info.json`` (image count^0.5, rare 0), as
    the original; empty: the training split's own image counts^0.5 (0 for categories without
    training annotations, so held-out names are never drawn as negatives).
    """
    loss = config.loss
    if not loss.federated:
        return None
    if loss.class_frequency_path:
        source = loss.class_frequency_path
        weights = load_lvis_fed_weights(resolve(source))
    else:
        from ov2seg_jax.data.pipeline import dataset_info

        source = f"the image counts of {config.data.dataset} ({config.data.root})"
        weights = np.asarray(dataset_info(config.data).frequency_weight, np.float32)
    if weights.shape[0] != num_classes:
        raise ValueError(
            f"{source} has {weights.shape[0]} categories but the classifier has {num_classes} "
            "rows; the federated loss needs one weight per class "
            "(set config.loss.federated=False for other vocabularies)"
        )
    return weights


def make_loss_terms_fn(config: ml_collections.ConfigDict, weights: np.ndarray | None):
    """(outputs, targets, rng) -> unweighted loss terms, and the weight of each term."""
    cc = CriterionConfig.from_config(config.loss)
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


def _subset_ground_truth(json_path: str | dict, max_videos: int) -> dict:
    """The first ``max_videos`` videos of a YouTube-VIS-format json (a path or the json itself)
    with their annotations."""
    if isinstance(json_path, dict):
        gt = dict(json_path)  # shallow: the lists below are replaced, never changed in place
    else:
        with open(json_path) as f:
            gt = json.load(f)
    if max_videos:
        gt["videos"] = gt["videos"][:max_videos]
        keep = {v["id"] for v in gt["videos"]}
        gt["annotations"] = [a for a in gt.get("annotations", []) if a["video_id"] in keep]
    return gt


def make_eval_fn(
    config: ml_collections.ConfigDict, workdir: str, classifier: np.ndarray
) -> EvalFn | None:
    """The periodic evaluation: video AP on ``config.evaluate``'s split (its first
    ``train.eval_max_videos`` videos); None when the split is absent or has no annotations."""
    from ov2seg_jax.data.eval_split import open_eval_split, uses_tfds

    ev, tc = config.evaluate, config.train
    if not tc.eval_every or not (uses_tfds(ev) or os.path.isfile(ev.dataset_json)):
        return None
    split = open_eval_split(ev)
    dataset = split.dataset
    if not dataset.has_annotations:
        return None
    max_videos = int(tc.eval_max_videos)
    gt = _subset_ground_truth(split.ground_truth, max_videos)

    def evaluate(variables, step: int) -> dict[str, float]:
        from ov2seg_jax.evaluation.video_ap import evaluate_video
        from ov2seg_jax.inference.evaluation_loop import predict_dataset
        from ov2seg_jax.inference.predictor import VideoPredictor

        # this host's copy: each host predicts its share of the videos on its own device
        variables = jax.device_put(distributed.host_copy(variables), jax.local_devices()[0])
        # A new predictor per evaluation (no state carried between them); equal models and
        # precisions share one jitted forward pass, so it compiles once for all evaluations.
        predictor = VideoPredictor.from_config(
            config.model, variables, classifier, config.inference
        )
        out_dir = os.path.join(workdir, "train", "eval", f"step_{step:08d}")
        results = predict_dataset(predictor, dataset, out_dir, config.inference, max_videos)
        values = None
        if jax.process_index() == 0:  # process 0 scores; every host gets the numbers
            result = evaluate_video(gt, results, semantics=ev.semantics)
            values = [float(result.stats[0]), float("nan"), float("nan")]
            if result.stats_base is not None:
                values[1:] = [float(result.stats_base[0]), float(result.stats_novel[0])]
        values = distributed.broadcast_floats(values, 3)
        metrics = {"AP": float(values[0])}
        if not np.isnan(values[1]):
            metrics["AP_base"], metrics["AP_novel"] = float(values[1]), float(values[2])
        if jax.process_index() == 0:
            print(f"step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
        return metrics

    return evaluate


def run_training(
    config: ml_collections.ConfigDict,
    workdir: str,
    classifier: np.ndarray,
    *,
    resolve=lambda p: p,
    eval_fn: EvalFn | None = None,
    max_steps: int | None = None,
) -> TrainResult:
    """Train with ``classifier`` (C, D) as the text embeddings of the C training categories."""
    weights = class_weights(config, classifier.shape[0], resolve)
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
