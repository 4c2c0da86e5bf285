"""Hungarian matcher: optimality against scipy and brute force, padding, costs by hand."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from ov2seg_jax.losses import matcher
from ov2seg_jax.losses.matcher import MatcherCosts, assign_padded, finite_cost


def _random_problem(seed: int, b: int, q: int, n: int):
    rng = np.random.default_rng(seed)
    cost = rng.normal(size=(b, q, n)).astype(np.float32)
    valid = rng.random((b, n)) < 0.6
    valid[0] = False  # an image without targets
    if b > 2:
        valid[2] = True  # one fully valid
    return cost, valid


def _brute_force_total(cost: np.ndarray) -> float:
    """Minimum total over all injective maps of the smaller side into the larger (tiny sizes)."""
    q, n = cost.shape
    if n == 0:
        return 0.0
    if n <= q:
        return min(
            sum(cost[r, j] for j, r in enumerate(rows))
            for rows in itertools.permutations(range(q), n)
        )
    return min(
        sum(cost[i, c] for i, c in enumerate(cols)) for cols in itertools.permutations(range(n), q)
    )


@pytest.mark.parametrize("q, n", [(6, 4), (3, 5)])  # more queries than targets, and fewer
def test_assignment_is_optimal_and_ignores_padding(q, n):
    cost, valid = _random_problem(q * 10 + n, 5, q, n)
    solve = jax.jit(matcher.solve_matching)
    m = solve(jnp.asarray(cost), jnp.asarray(valid))
    pred, tgt, ok = (np.asarray(x) for x in (m.pred_index, m.target_index, m.valid))
    np.testing.assert_array_equal((pred, tgt, ok), assign_padded(cost, valid))
    for i in range(cost.shape[0]):
        cols = np.flatnonzero(valid[i])
        k = min(q, cols.size)
        assert ok[i].sum() == k and ok[i, :k].all(), "valid slots first, min(Q, n) of them"
        assert valid[i, tgt[i, ok[i]]].all(), "a padded target was matched"
        assert np.all(np.diff(pred[i, ok[i]]) > 0), "slots sorted by query, queries distinct"
        assert len(set(tgt[i, ok[i]])) == k
        total = cost[i, pred[i, ok[i]], tgt[i, ok[i]]].sum(dtype=np.float64)
        sub = cost[i][:, cols].astype(np.float64)
        r, c = linear_sum_assignment(sub)
        assert total == pytest.approx(sub[r, c].sum(), abs=1e-9)
        assert total == pytest.approx(_brute_force_total(sub), abs=1e-9)


def test_infinite_costs_are_avoided_when_possible():
    cost = np.array([[np.inf, 1.0], [2.0, np.inf], [np.nan, 5.0]], np.float32)[None]
    pred, tgt, ok = assign_padded(cost, np.ones((1, 2), bool))
    assert ok.all()
    assert list(zip(pred[0], tgt[0], strict=True)) == [(0, 1), (1, 0)]
    fixed = finite_cost(cost[0])
    assert np.isfinite(fixed).all() and fixed[0, 0] > 1 + 2 + 5
    # all non-finite: still an answer (the loss will be non-finite and the trainer stops)
    assert assign_padded(np.full((1, 2, 1), np.nan, np.float32), np.ones((1, 1), bool))[2].all()


def test_matching_cost_by_hand():
    """One image, Q=2, N=3; the point values are read with point_sample and the cost formula is
    evaluated here in float64 loops."""
    rng = np.random.default_rng(5)
    c = 4
    logits = rng.normal(size=(1, 2, c + 1)).astype(np.float32)
    obj = rng.normal(size=(1, 2, 2)).astype(np.float32)
    masks = rng.normal(size=(1, 2, 3, 4)).astype(np.float32) * 2
    labels = np.array([[3, 0, 3]], np.int32)
    tmasks = rng.random((1, 3, 6, 8)) > 0.5
    points = rng.uniform(size=(1, 7, 2)).astype(np.float32)
    costs = MatcherCosts(class_weight=2.0, mask_weight=5.0, dice_weight=3.0)
    ours = np.asarray(
        jax.jit(matcher.matching_cost, static_argnums=6)(
            logits, obj, masks, labels, tmasks, points, costs
        )
    )
    sample = jax.jit(matcher.point_sample)
    x = np.asarray(sample(masks, np.broadcast_to(points[:, None], (1, 2, 7, 2))), np.float64)[0]
    t = np.asarray(sample(tmasks, np.broadcast_to(points[:, None], (1, 3, 7, 2))), np.float64)[0]
    p_obj = np.exp(obj[0, :, 0]) / np.exp(obj[0]).sum(-1)
    expected = np.zeros((2, 3))
    for qi in range(2):
        for ni in range(3):
            cls = 1 / (1 + np.exp(-float(logits[0, qi, labels[0, ni]])))
            bce = np.mean(
                -(
                    t[ni] * np.log(1 / (1 + np.exp(-x[qi])))
                    + (1 - t[ni]) * np.log(1 - 1 / (1 + np.exp(-x[qi])))
                )
            )
            s = 1 / (1 + np.exp(-x[qi]))
            dice = 1 - (2 * (s * t[ni]).sum() + 1) / (s.sum() + t[ni].sum() + 1)
            expected[qi, ni] = -2.0 * np.sqrt(cls * p_obj[qi]) + 5.0 * bce + 3.0 * dice
    np.testing.assert_allclose(ours[0], expected, atol=2e-5, rtol=0)
