"""Precision / recall per category, area range and maxDets, vectorised over categories.

Official rule, per (category k, area range a, maxDets m): take the first m predictions (score
order) of every (video, k), concatenate them over videos in ascending video-id order, stable-sort
by score (descending); TP = matched and not ignored, FP = unmatched and not ignored;
N = non-ignored GTs (crowd included in LV-VIS semantics). N = 0 leaves the category at -1.
recall = cumTP / N, precision = cumTP / (cumTP + cumFP + eps) made non-increasing from the right;
the precision at recall threshold r is the one at the first index whose recall is >= r (0 if
none). Stored recall: final cumTP / N (0 with no predictions).

Every category is one segment of one sorted array here. Values are computed with the same float64
operations as the official code, so the arrays agree bit for bit; the suffix maximum is taken on
integer ranks to stay exact, and the recall search is done on integer TP counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = np.spacing(1)


@dataclass
class Accumulated:
    """``precision[(a, m)]``: [T, R, K] (only for the requested combos); ``recall``: [T, K, A, M]."""

    precision: dict[tuple[int, int], np.ndarray]
    recall: np.ndarray


def _segmented_suffix_max(values: np.ndarray, segment: np.ndarray, num_segments: int) -> np.ndarray:
    """Suffix maximum of each row of ``values`` [T, n] within runs of equal ``segment`` [n]."""
    n = values.shape[1]
    by_value = np.argsort(values, axis=1, kind="stable")
    rank = np.empty_like(by_value)
    np.put_along_axis(rank, by_value, np.arange(n)[None, :].repeat(values.shape[0], 0), axis=1)
    key = (num_segments - 1 - segment)[None, :].astype(np.int64) * n + rank
    best = np.maximum.accumulate(key[:, ::-1], axis=1)[:, ::-1] % n
    return np.take_along_axis(np.take_along_axis(values, by_value, axis=1), best, axis=1)


def _min_counts(rec_thrs: np.ndarray, npig: np.ndarray) -> np.ndarray:
    """[K, R]: smallest integer c with float64 c / npig >= r (what searchsorted finds)."""
    n = np.maximum(npig, 1).astype(np.float64)[:, None]
    c = np.ceil(rec_thrs[None, :] * n).astype(np.int64)
    for _ in range(4):
        down = (c > 0) & ((c - 1) / n >= rec_thrs[None, :])
        up = c / n < rec_thrs[None, :]
        if not down.any() and not up.any():
            break
        c = c - down + up
    return c


def accumulate(
    category: np.ndarray,
    score: np.ndarray,
    video: np.ndarray,
    rank: np.ndarray,
    matched: np.ndarray,
    ignored: np.ndarray,
    npig: np.ndarray,
    num_categories: int,
    max_dets: list[int],
    rec_thrs: np.ndarray,
    precision_for: list[tuple[int, int]],
) -> Accumulated:
    """Precision and recall arrays.

    Args:
      category, score, video, rank: [N] per kept prediction (rank = position in its
        (video, category) by score).
      matched, ignored: [A, T, N] official ``dtm != 0`` and ``dtIgnore``.
      npig: [K, A] non-ignored GTs per category and area range.
      precision_for: (area index, maxDets index) combos whose precision is wanted.
    """
    areas, thresholds, _ = matched.shape
    recs = len(rec_thrs)
    recall = np.full((thresholds, num_categories, areas, len(max_dets)), -1.0)
    precision = {key: np.full((thresholds, recs, num_categories), -1.0) for key in precision_for}
    order = np.lexsort((rank, video, -score, category))
    for mi, max_det in enumerate(max_dets):
        idx = order[rank[order] < max_det]
        cats = category[idx]
        n = len(idx)
        starts = np.flatnonzero(np.r_[True, cats[1:] != cats[:-1]]) if n else np.zeros(0, int)
        seg_cats = cats[starts]
        seg_end = np.r_[starts[1:], n]
        segment = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))
        for ai in range(areas):
            has_gt = npig[:, ai] > 0
            recall[:, has_gt, ai, mi] = 0.0
            want_precision = (ai, mi) in precision
            if want_precision:
                precision[ai, mi][:, :, has_gt] = 0.0
            if n == 0:
                continue
            m = matched[ai][:, idx]
            ig = ignored[ai][:, idx]
            is_tp = m & ~ig
            tp_cum = np.cumsum(is_tp, axis=1)
            fp_cum = np.cumsum(~m & ~ig, axis=1)
            before = np.maximum(starts - 1, 0)
            tp_base = np.where(starts > 0, tp_cum[:, before], 0)  # [T, S] TPs before
            fp_base = np.where(starts > 0, fp_cum[:, before], 0)
            tp_cum = tp_cum - tp_base[:, segment]
            fp_cum = fp_cum - fp_base[:, segment]
            tp = tp_cum.astype(np.float64)
            fp = fp_cum.astype(np.float64)
            seg_npig = npig[seg_cats, ai]
            live = seg_npig > 0
            rc_last = tp[:, seg_end - 1] / np.maximum(seg_npig, 1)[None, :]
            recall[:, seg_cats[live], ai, mi] = rc_last[:, live]
            if not want_precision:
                continue
            pr = tp / (fp + tp + EPS)
            pr = _segmented_suffix_max(pr, segment, len(starts))
            # first index with recall >= r  ==  position of the need-th TP of the segment
            need = _min_counts(rec_thrs, seg_npig)  # [S, R]
            out = np.zeros((thresholds, len(starts), recs))
            for t in range(thresholds):
                tp_at = np.flatnonzero(is_tp[t])
                reach = need <= tp_cum[t, seg_end - 1][:, None]
                if tp_at.size:
                    nth = tp_at[np.clip(tp_base[t][:, None] + need - 1, 0, tp_at.size - 1)]
                else:
                    nth = np.zeros_like(need)
                pos = np.where(need == 0, starts[:, None], nth)
                out[t] = np.where(reach, pr[t, pos], 0.0)
            precision[ai, mi][:, :, seg_cats[live]] = out[:, live, :].transpose(0, 2, 1)
    return Accumulated(precision=precision, recall=recall)
