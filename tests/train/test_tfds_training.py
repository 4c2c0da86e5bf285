"""Training fed from a prepared TFDS split equals training fed from the folder layout, step for
step, on the tiny config (same losses every step, same final parameters)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from ov2seg_jax.data import synthetic as syn
from ov2seg_jax.data.tfds.prepare import prepare
from ov2seg_jax.train.loop import train
from ov2seg_jax.train.run import make_batches, make_loss_terms_fn
from tests.train.toy import toy_classifier, toy_config

SPEC = syn.SyntheticSpec(
    num_train_videos=4, num_val_videos=1, num_frames=3, height=64, width=64, text_dim=32
)


def _config(dataset: str, root: str):
    c = toy_config(num_steps=2, batch_size=2)
    c.model.num_classes = 64
    c.data.update(
        dict(
            dataset=dataset,
            root=root,
            split="train",
            base_only=True,
            image_size=64,
            max_instances=4,
            repeat_factor_threshold=0.0,
            num_parallel_calls=2,
            prefetch=1,
        )
    )
    return c


def _train(c, workdir):
    loss_fn, weights = make_loss_terms_fn(c, None)
    return train(
        c,
        str(workdir),
        classifier=toy_classifier(c),
        loss_terms_fn=loss_fn,
        loss_weights=weights,
        batches=make_batches(c),
    )


@pytest.mark.slow
def test_training_from_tfds_equals_training_from_folders(tmp_path):
    folder = syn.build_synthetic_dataset(tmp_path / "synthetic", SPEC, seed=1)["root"]
    prepare("ov2seg_synthetic", folder, str(tmp_path / "tfds"))
    a = _train(_config("lvvis_format", folder), tmp_path / "folder")
    b = _train(
        _config("tfds:ov2seg_synthetic:train", str(tmp_path / "tfds")), tmp_path / "tfds_run"
    )
    losses = [[json.loads(line) for line in open(r.metrics_path)] for r in (a, b)]
    steps = [[m for m in run if "loss" in m] for run in losses]
    assert [m["step"] for m in steps[0]] == [1, 2]
    for x, y in zip(*steps, strict=True):
        for key in x:
            if key.startswith(("loss", "grad_norm", "lr")):
                assert x[key] == y[key], (x["step"], key)
    leaves_a = jax.tree_util.tree_leaves_with_path(a.variables)
    leaves_b = jax.tree_util.tree_leaves_with_path(b.variables)
    for (path, x), (_, y) in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))
