"""Evaluation from a prepared TFDS split writes the same results.json and scores the same AP as
evaluation from the folder layout (``config.evaluate.dataset`` vs ``dataset_json``)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from configs import tiny
from ov2seg_jax.data import synthetic as syn
from ov2seg_jax.data.eval_split import open_eval_split
from ov2seg_jax.data.tfds.prepare import prepare
from ov2seg_jax.evaluation import evaluate_video
from ov2seg_jax.inference.evaluation_loop import predict_dataset
from ov2seg_jax.inference.predictor import VideoPredictor
from ov2seg_jax.models.ov2seg import build_model
from ov2seg_jax.train.loop import init_variables

SPEC = syn.SyntheticSpec(
    num_train_videos=1, num_val_videos=3, num_frames=3, height=64, width=64, text_dim=32
)


@pytest.mark.slow
def test_results_and_ap_from_tfds_equal_the_folder_layout(tmp_path):
    paths = syn.build_synthetic_dataset(tmp_path / "synthetic", SPEC, seed=4)
    prepare("ov2seg_synthetic", paths["root"], str(tmp_path / "tfds"))
    c = tiny.get_config()
    c.model.num_classes = 64
    c.inference.min_size_test = c.inference.max_size_test = 64
    c.inference.top_k = 20
    classifier = np.load(paths["classifier"])
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        variables = init_variables(build_model(c.model), c.train, classifier, 0)
        predictor = VideoPredictor.from_config(c.model, variables, classifier, c.inference)
        c.evaluate.dataset_json, c.evaluate.image_root = paths["val_json"], paths["val_images"]
        folder = open_eval_split(c.evaluate)
        c.evaluate.dataset, c.evaluate.root = "tfds:ov2seg_synthetic:val", str(tmp_path / "tfds")
        stored = open_eval_split(c.evaluate)
        out = [
            predict_dataset(predictor, s.dataset, str(tmp_path / name), c.inference)
            for name, s in (("folder", folder), ("tfds", stored))
        ]
    finally:
        jax.config.update("jax_disable_most_optimizations", False)
    with open(out[0], "rb") as fa, open(out[1], "rb") as fb:
        a, b = fa.read(), fb.read()
    assert a == b and len(a) > 100  # the same results.json, byte for byte
    ra = evaluate_video(folder.ground_truth, out[0])
    rb = evaluate_video(stored.ground_truth, out[1])
    for field in ("stats", "stats_base", "stats_novel"):
        np.testing.assert_array_equal(getattr(ra, field), getattr(rb, field))
