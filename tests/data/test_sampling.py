"""Repeat-factor sampling and the (seed, position) example order (ov2seg_jax.data.sampling)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ov2seg_jax.data import sampling


def test_repeat_factors_equal_hand_computed_values():
    # 8 records; category 0 in 4 (f=1/2), 1 in 2 (f=1/4), 2 in 1 (f=1/8); one record without any.
    cats = [{0}, {0, 1}, {0}, {0, 2}, {1}, set(), {3}, {3}]
    t = 0.5
    # r(0) = max(1, sqrt(0.5 / 0.5)) = 1; r(1) = sqrt(2); r(2) = sqrt(4) = 2; r(3) = sqrt(2).
    expected = [1.0, math.sqrt(2), 1.0, 2.0, math.sqrt(2), 1.0, math.sqrt(2), math.sqrt(2)]
    got = sampling.repeat_factors([frozenset(c) for c in cats], t)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # The LVIS threshold: a category in 1 of 10,000 images gets sqrt(0.001 / 1e-4) = sqrt(10).
    many = [frozenset({0})] * 9999 + [frozenset({0, 1})]
    np.testing.assert_allclose(sampling.repeat_factors(many, 0.001)[-1], math.sqrt(10), rtol=1e-6)
    np.testing.assert_array_equal(sampling.repeat_factors([frozenset({1})] * 3, 0.0), [1, 1, 1])


def test_epoch_rounds_stochastically_and_depends_only_on_seed_and_epoch():
    factors = np.array([1.0, 2.5, 1.25, 3.0], np.float32)
    copies = []
    for epoch in range(400):
        idx = sampling.epoch_indices(factors, seed=5, epoch=epoch, shuffle=True)
        c = np.bincount(idx, minlength=4)
        assert c[0] == 1 and c[3] == 3 and c[1] in (2, 3) and c[2] in (1, 2)
        copies.append(c)
    # E[copies] = factor; 400 epochs: standard error <= 0.5 / 20 = 0.025.
    np.testing.assert_allclose(np.mean(copies, 0), factors, atol=0.1)
    a = sampling.epoch_indices(factors, 5, 3, True)
    np.testing.assert_array_equal(a, sampling.epoch_indices(factors, 5, 3, True))
    assert not np.array_equal(a, sampling.epoch_indices(factors, 6, 3, True))
    assert np.all(np.diff(sampling.epoch_indices(factors, 5, 3, False)) >= 0)


def test_example_stream_is_random_access():
    factors = np.array([1.0, 1.5, 2.2], np.float32)
    forward = sampling.ExampleStream(factors, seed=1)
    seq = [forward.record_at(p) for p in range(60)]
    epochs = [e for _, e in seq]
    assert epochs == sorted(epochs) and epochs[-1] >= 8
    backward = sampling.ExampleStream(factors, seed=1)
    for p in [59, 3, 40, 0, 17]:
        assert backward.record_at(p) == seq[p]
    with pytest.raises(ValueError, match="no training records"):
        sampling.ExampleStream(np.zeros(0, np.float32), seed=0)


def test_host_positions_tile_each_global_batch():
    b, hosts = 3, 4
    per_host = [sampling.host_positions(b, p, hosts, start_batch=2) for p in range(hosts)]
    got = [[next(it) for _ in range(2 * b)] for it in per_host]
    # Global batch k covers [k*b*hosts, (k+1)*b*hosts); host p its p-th block of b.
    for k, batch in enumerate((2, 3)):
        positions = sorted(x for g in got for x in g[k * b : (k + 1) * b])
        assert positions == list(range(batch * b * hosts, (batch + 1) * b * hosts))
    assert got[1][:b] == [27, 28, 29]
    with pytest.raises(ValueError, match="process_index"):
        next(sampling.host_positions(2, 2, 2))
