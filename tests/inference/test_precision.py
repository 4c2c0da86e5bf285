"""The matmul precision belongs to the predictor, and evaluation inside training computes what
--mode evaluate computes for the same weights."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import ov2seg_r50_lvvis, tiny
from ov2seg_jax.inference.predictor import jitted_forward
from ov2seg_jax.models.ov2seg import build_model


@pytest.fixture
def global_precision():
    old = jax.config.jax_default_matmul_precision
    yield
    jax.config.update("jax_default_matmul_precision", old)


def _lowered_text(precision: str | None) -> str:
    cfg = tiny.get_config().model
    model = build_model(cfg)
    images = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    text = jax.ShapeDtypeStruct((3, cfg.decoder.text_embed_dim), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), images, text)
    return jitted_forward(model, precision).lower(variables, images, text).as_text()


def _dots(text: str) -> tuple[int, int]:
    """(dot_general ops, those at HIGHEST precision) of a lowered module."""
    lines = [ln for ln in text.splitlines() if "stablehlo.dot_general" in ln]
    return len(lines), sum("precision = [HIGHEST, HIGHEST]" in ln for ln in lines)


def test_the_predictors_precision_wins_over_the_process_default(global_precision):
    jax.config.update("jax_default_matmul_precision", "bfloat16")
    n, high = _dots(_lowered_text("highest"))
    assert n > 10 and high == n  # every matmul at the predictor's precision
    jax.config.update("jax_default_matmul_precision", "highest")
    n, high = _dots(_lowered_text("default"))
    assert high < n / 2  # only the explicitly-HIGHEST interpolation matmuls
    assert jax.config.jax_default_matmul_precision == "highest"  # untouched by the predictor


@pytest.mark.slow
def test_training_evaluation_equals_evaluate_mode(
    fixtures_root, small_model_dir, tmp_path, global_precision
):
    """The periodic evaluation of a training run and --mode evaluate give the same results for
    the same weights, also after the training evaluation has scored other weights first and
    while the process default precision is something else."""
    from ov2seg_jax import checkpoint
    from ov2seg_jax.modes import run_evaluate
    from ov2seg_jax.train.run import make_eval_fn
    from tests.inference.test_evaluate_mode import _make_split

    frames = np.load(os.path.join(fixtures_root, "ov2seg_small", "clip.npz"))["frames"]
    gt = _make_split(tmp_path / "split", frames)
    config = ov2seg_r50_lvvis.get_config()
    config.evaluate.dataset_json = gt
    config.evaluate.image_root = str(tmp_path / "split" / "JPEGImages")
    config.checkpoint.path = small_model_dir
    config.classifier.path = ""
    config.inference.min_size_test = 64
    config.train.eval_every = 1
    config.model = checkpoint.load_model_config(small_model_dir)
    classifier = checkpoint.load_classifier(small_model_dir)

    work = str(tmp_path / "evaluate")
    jax.config.update("jax_default_matmul_precision", "highest")
    stats = run_evaluate(config, work)
    with open(os.path.join(work, "evaluate", "results.json")) as f:
        reference = json.load(f)

    from ov2seg_jax.convert.convert_ov2seg import abstract_variables

    variables = checkpoint.load_model(small_model_dir, abstract_variables(config.model))
    other = jax.tree.map(lambda x: np.asarray(x) * 0.9, variables)
    jax.config.update("jax_default_matmul_precision", "bfloat16")
    evaluate = make_eval_fn(config, str(tmp_path / "train"), classifier)
    evaluate(other, 1)
    metrics = evaluate(variables, 2)
    with open(tmp_path / "train" / "train" / "eval" / "step_00000002" / "results.json") as f:
        during_training = json.load(f)
    assert len(reference) == len(during_training) > 0
    for a, b in zip(reference, during_training, strict=True):
        assert (a["video_id"], a["category_id"]) == (b["video_id"], b["category_id"])
        assert a["segmentations"] == b["segmentations"]
        np.testing.assert_allclose(a["score"], b["score"], rtol=1e-6)
    assert metrics["AP"] == pytest.approx(stats["stats"][0])
