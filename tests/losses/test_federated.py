"""Federated category choice: the LVIS weights, the occurring classes and the weighted draw."""

from __future__ import annotations

import hashlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ov2seg_jax.losses.federated import (
    fed_category_mask,
    load_lvis_fed_weights,
    sample_fed_priorities,
)


def test_lvis_weights_reproduce_the_original_buffer(metadata_root, fixtures_root):
    manifest_path = os.path.join(fixtures_root, "ov2seg_r50", "manifest.json")
    if not os.path.isfile(manifest_path):
        pytest.skip(f"{manifest_path} not found")
    with open(manifest_path) as f:
        entry = next(e for e in json.load(f)["entries"] if e["key"] == "criterion.freq_weight")
    w = load_lvis_fed_weights(os.path.join(metadata_root, "lvis_v1_train_cat_info.json"))
    assert w.shape == tuple(entry["shape"]) and w.dtype == np.float32
    assert hashlib.sha256(w.astype("<f4").tobytes()).hexdigest() == entry["sha256"]


def test_lvis_weights_reject_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_lvis_fed_weights(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": 1, "frequency": "f"}]))
    with pytest.raises(ValueError, match="image_count"):
        load_lvis_fed_weights(str(bad))


def test_category_mask_keeps_occurring_and_tops_up_without_no_object():
    c = 10
    weights = jnp.asarray([1, 1, 0, 1, 1, 1, 0, 1, 1, 1], jnp.float32)  # 2 and 6 are "rare"
    classes = jnp.asarray([[6, 10, 10], [4, 10, 6]])  # 10 = no object
    mask = jax.jit(fed_category_mask, static_argnums=2)
    for seed in range(5):
        prio = sample_fed_priorities(jax.random.key(seed), weights, c)
        got = np.asarray(mask(classes, prio, 6))
        assert got[[4, 6]].all()
        assert not got[2], "a zero-weight class that does not occur was drawn"
        # 3 occurring entries (4, 6, no object) + 3 drawn
        assert got.sum() == 5
    # enough occurring classes already: nothing drawn
    prio = sample_fed_priorities(jax.random.key(0), weights, c)
    assert np.flatnonzero(np.asarray(mask(classes, prio, 2))).tolist() == [4, 6]
    # not enough drawable classes: all that can be drawn are
    assert np.asarray(mask(classes, prio, 50)).sum() == 8 + 1  # the 8 weighted + occurring 6


def test_draw_is_weighted_without_replacement():
    """Inclusion frequencies of 2 draws out of 4 categories against the exact probabilities."""
    w = np.array([1.0, 2.0, 3.0, 4.0])
    exact = np.zeros(4)
    for i in range(4):
        for j in range(4):
            if i != j:
                p = w[i] / w.sum() * w[j] / (w.sum() - w[i])
                exact[i] += p
                exact[j] += p
    classes = jnp.full((1, 1), 4)  # only "no object" occurs: it takes 1 of the 3 entries
    keys = jax.random.split(jax.random.key(0), 20000)
    draw = jax.jit(
        jax.vmap(lambda k: fed_category_mask(classes, sample_fed_priorities(k, w, 4), 3))
    )
    freq = np.asarray(draw(keys)).mean(0)
    # binomial standard error <= 0.0036 at n = 20000
    np.testing.assert_allclose(freq, exact, atol=0.015)
