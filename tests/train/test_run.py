"""--mode train's wiring: federated weights from the training split, and clear input errors."""

from __future__ import annotations

import numpy as np
import pytest

from configs import synthetic
from ov2seg_jax import modes
from ov2seg_jax.data.synthetic import SyntheticSpec, build_synthetic_dataset, categories
from ov2seg_jax.data.tfds.prepare import prepare
from ov2seg_jax.train.run import class_weights


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run"))
    c = modes.expand_workdir(synthetic.get_config(), workdir)
    spec = SyntheticSpec(num_train_videos=12, num_val_videos=2, num_frames=2)
    build_synthetic_dataset(c.synthetic.root, spec, seed=0)
    prepare("ov2seg_synthetic", c.synthetic.root, c.synthetic.tfds_data_dir)
    return c, workdir


def test_workdir_is_expanded_everywhere(small_config):
    c, workdir = small_config
    assert c.data.root == f"{workdir}/tfds" and c.synthetic.root == f"{workdir}/data"
    assert c.classifier.path == f"{workdir}/data/text_classifier.npy"
    assert "{workdir}" not in str(c.to_dict())


def test_federated_weights_come_from_the_training_split(small_config):
    c, _ = small_config
    weights = class_weights(c, 64, resolve=lambda p: p)
    novel = np.array([cat["partition"] == 2 for cat in categories()])
    assert weights.shape == (64,)
    assert np.all(weights[novel] == 0)  # held-out names are never drawn as negatives
    assert np.all(weights[~novel] >= 0) and weights[~novel].max() >= 1
    # image counts ** 0.5: the weights squared are whole numbers
    np.testing.assert_allclose(weights**2, np.round(weights**2), atol=1e-4)


def test_classifier_with_wrong_rows_is_a_clear_error(small_config, tmp_path):
    c, workdir = small_config
    c = c.copy_and_resolve_references()
    bad = tmp_path / "bad.npy"
    np.save(bad, np.ones((10, 512), np.float32))
    c.classifier.path = str(bad)
    with pytest.raises(modes.UserError, match="10 rows but the training data"):
        modes.run_train(c, workdir)


def test_missing_training_data_is_a_clear_error(small_config, tmp_path):
    c, _ = small_config
    c = c.copy_and_resolve_references()
    c.data.root = str(tmp_path / "nowhere")
    with pytest.raises(modes.UserError, match="training data"):
        modes.run_train(c, str(tmp_path))
