"""The vectorised greedy matching against a plain loop written from the rule's description."""

from __future__ import annotations

import numpy as np
import pytest

from ov2seg_jax.evaluation.matching import greedy_match

THRS = np.linspace(0.5, 0.95, 10)


def _loop(iou, gt_ignore, crowd, thr):
    """Predictions in order; GTs scanned non-ignored first; skip matched non-crowd; stop at the
    first ignored GT once a non-ignored one is held; ties go to the later GT."""
    order = np.argsort(gt_ignore, kind="stable")
    taken = np.zeros(len(order), bool)
    out = []
    for d in range(iou.shape[0]):
        best, m = min(thr, 1 - 1e-10), -1
        for g in order:
            if taken[g] and not crowd[g]:
                continue
            if m > -1 and not gt_ignore[m] and gt_ignore[g]:
                break
            if iou[d, g] < best:
                continue
            best, m = iou[d, g], g
        if m > -1:
            taken[m] = True
        out.append(m)
    return out


@pytest.mark.parametrize("seed", range(40))
def test_random_pairs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pairs, depth, width = 6, 7, 4
    iou = np.round(rng.uniform(0, 1, (pairs, depth, width)), 1)  # many exact ties
    dets = rng.integers(1, depth + 1, pairs)
    for p in range(pairs):
        iou[p, dets[p] :] = -1
    ignore = rng.uniform(size=(pairs, 2, width)) < 0.3
    crowd = rng.uniform(size=(pairs, width)) < 0.2
    got = greedy_match(iou, dets, ignore, crowd, THRS)
    for p in range(pairs):
        for a in range(2):
            for t, thr in enumerate(THRS):
                want = _loop(iou[p, : dets[p]], ignore[p, a], crowd[p], thr)
                assert list(got[p, a, t, : dets[p]]) == want
