"""Greedy COCO/YouTube-VIS matching of predictions to GT tracks, all pairs at once.

The official loop, per (video, category, area range) and IoU threshold t, takes predictions by
score and scans the GTs (non-ignored first, file order within each group): a GT already matched is
skipped unless it is crowd; the scan stops when the best so far is a non-ignored GT and the next GT
is ignored; a GT whose IoU is >= the best so far (which starts at ``min(t, 1 - 1e-10)``) becomes
the best. That picks, for each prediction, the *last* GT of maximal IoU among the valid
non-ignored ones, or if there is none among the valid ignored ones. Here that rule is applied to
every (pair, area range, threshold) at once, one prediction rank at a time.
"""

from __future__ import annotations

import numpy as np


def _last_argmax(values: np.ndarray, pick: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the last maximum of ``values`` over the picked entries of the last axis."""
    masked = np.where(pick, values, -np.inf)
    width = masked.shape[-1]
    last = width - 1 - np.argmax(masked[..., ::-1], axis=-1)
    return last, pick.any(axis=-1)


def greedy_match(
    iou: np.ndarray,
    num_dets: np.ndarray,
    gt_ignore: np.ndarray,
    gt_crowd: np.ndarray,
    iou_thrs: np.ndarray,
) -> np.ndarray:
    """Matched GT slot (or -1) of every prediction.

    Args:
      iou: [P, D, G] IoU of the d-th prediction (score order) and the g-th GT of pair p; entries
        beyond a pair's predictions or GTs must be < 0.
      num_dets: [P] predictions per pair.
      gt_ignore: [P, A, G] ignore flag of each GT per area range.
      gt_crowd: [P, G] crowd flag (a matched crowd GT stays available).
      iou_thrs: [T] IoU thresholds.

    Returns:
      [P, A, T, D] int64: slot of the matched GT, -1 when unmatched.
    """
    num_pairs, depth, width = iou.shape
    areas = gt_ignore.shape[1]
    thr = np.minimum(np.asarray(iou_thrs, dtype=np.float64), 1 - 1e-10)
    order = np.argsort(-num_dets, kind="stable")
    iou_s = iou[order]
    ign_s = gt_ignore[order][:, :, None, :]  # [P, A, 1, G]
    crowd_s = gt_crowd[order][:, None, None, :]  # [P, 1, 1, G]
    active = np.sort(num_dets)[::-1]
    taken = np.zeros((num_pairs, areas, len(thr), width), dtype=bool)
    match = np.full((num_pairs, areas, len(thr), depth), -1, dtype=np.int64)
    for d in range(depth):
        n = int(np.count_nonzero(active > d))
        if n == 0:
            break
        io = iou_s[:n, d, :][:, None, None, :]  # [n, 1, 1, G]
        valid = (io >= thr[None, None, :, None]) & (~taken[:n] | crowd_s[:n])
        best_regular, has_regular = _last_argmax(io, valid & ~ign_s[:n])
        best_ignored, has_ignored = _last_argmax(io, valid & ign_s[:n])
        m = np.where(has_regular, best_regular, np.where(has_ignored, best_ignored, -1))
        match[:n, :, :, d] = m
        p, a, t = np.nonzero(m >= 0)
        taken[p, a, t, m[p, a, t]] = True
    out = np.empty_like(match)
    out[order] = match
    return out
