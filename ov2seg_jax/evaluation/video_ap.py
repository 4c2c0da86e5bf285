"""Video AP (LV-VIS / YouTube-VIS / OVIS): the official LV-VIS evaluator's numbers, fast.

``evaluate_video(gt, results)`` reproduces ``evaluate/lvviseval.py`` of the LV-VIS repository
(``LVVIS(gt)``, ``loadRes``, ``evaluate``, ``accumulate``, ``summarize``), including its quirks:
crowd GT counts as a normal GT that any number of predictions may match; track areas use
``int()`` of the GT ``areas``; frames are paired with ``zip``; an empty union gives IoU 0;
categories without GT stay -1 and drop out of every mean; maxDets is per video *and* category.
``semantics="ytvis"`` gives the YouTube-VIS variant instead (crowd GT ignored, no ``int()``), the
copy under ``ov2seg/data_video/datasets/ytvis_api``.

Pipeline: GT (:mod:`.video_gt`) -> results reduced in parallel to scores, areas and IoUs
(:mod:`.video_results`, :mod:`.track_iou`) -> top-100 per (video, category) -> greedy matching
(:mod:`.matching`) -> precision/recall (:mod:`.accumulate`) -> statistics (:mod:`.summary`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .accumulate import Accumulated, accumulate
from .matching import greedy_match
from .summary import (
    STAT_NAMES,
    format_table,
    official_lines,
    precision_combos,
    summarize,
)
from .track_iou import GtFrameTable, PairIoUs
from .video_gt import VideoGroundTruth, load_video_gt
from .video_results import ResultOptions, ResultsPart, read_results

IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = [1, 10, 100]
AREA_RANGES = np.array(
    [[0**2, 1e5**2], [0**2, 128**2], [128**2, 256**2], [256**2, 1e5**2]], dtype=np.float64
)


@dataclass
class VideoEvalResult:
    """Summary statistics (12 each, see :data:`STAT_NAMES`) and the arrays behind them."""

    stats: np.ndarray
    stats_base: np.ndarray | None
    stats_novel: np.ndarray | None
    category_ids: np.ndarray
    accumulated: Accumulated
    mask_size_warnings: int = 0
    warnings: list[str] = field(default_factory=list)

    def format_table(self, title: str = "") -> str:
        return format_table(self.stats, self.stats_base, self.stats_novel, title)

    def official_summary_lines(self) -> list[str]:
        return official_lines(self.stats, self.stats_base, self.stats_novel, IOU_THRS, MAX_DETS)

    def to_json(self) -> dict:
        # Always 12 numbers per group; -1.0 where not computable (no partition: no base/novel).
        as_list = lambda s: [-1.0] * len(STAT_NAMES) if s is None else [float(v) for v in s]  # noqa: E731
        return {
            "stats": as_list(self.stats),
            "stats_base": as_list(self.stats_base),
            "stats_novel": as_list(self.stats_novel),
            "stat_names": list(STAT_NAMES),
            "mask_size_warnings": self.mask_size_warnings,
        }

    def per_category(self) -> dict[int, dict[str, float]]:
        """AP (all areas, maxDets 100), AP50 and AR100 per category id; -1 without GT."""
        prec = self.accumulated.precision[0, len(MAX_DETS) - 1]
        rec = self.accumulated.recall[:, :, 0, len(MAX_DETS) - 1]
        out = {}
        for k, cat in enumerate(self.category_ids):
            p, p50, r = prec[:, :, k], prec[0, :, k], rec[:, k]
            mean = lambda s: float(np.mean(s[s > -1])) if (s > -1).any() else -1.0  # noqa: E731
            out[int(cat)] = {"AP": mean(p), "AP50": mean(p50), "AR100": mean(r)}
        return out


def _select_top(res: ResultsPart, num_categories: int, max_det: int) -> dict[str, np.ndarray]:
    """Per (video, category): predictions by score (stable), the first ``max_det`` kept."""
    rows = np.flatnonzero(res.category >= 0)
    key = res.video[rows].astype(np.int64) * num_categories + res.category[rows]
    order = np.lexsort((rows, -res.score[rows], key))
    rows, key = rows[order], key[order]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if rows.size else np.zeros(0, int)
    rank = np.arange(rows.size) - np.repeat(first, np.diff(np.r_[first, rows.size]))
    keep = rank < max_det
    rows = rows[keep]
    return {
        "row": rows,
        "rank": rank[keep],
        "video": res.video[rows].astype(np.int64),
        "category": res.category[rows].astype(np.int64),
        "score": res.score[rows],
        "area": res.avg_area[rows],
    }


def _match_all(
    gt: VideoGroundTruth, top: dict[str, np.ndarray], pairs: PairIoUs, gt_ignore: np.ndarray
) -> np.ndarray:
    """[A, T, N] matched GT track (or -1) of every kept prediction."""
    n = len(top["row"])
    out = np.full((len(AREA_RANGES), len(IOU_THRS), n), -1, dtype=np.int64)
    candidate = pairs.iou >= IOU_THRS[0]
    if not candidate.any():
        return out
    kept_pos, track, iou = pairs.row[candidate], pairs.track[candidate], pairs.iou[candidate]
    slot = np.zeros(len(gt.track_id), dtype=np.int64)
    for tracks in gt.pair_tracks.values():
        slot[tracks] = np.arange(len(tracks))
    # candidates: kept predictions with an IoU >= 0.5, in pair order then rank order
    dets = np.unique(kept_pos)
    det_key = top["video"][dets] * gt.num_categories + top["category"][dets]
    order = np.lexsort((top["rank"][dets], det_key))
    dets, det_key = dets[order], det_key[order]
    pair_start = np.flatnonzero(np.r_[True, det_key[1:] != det_key[:-1]])
    pair_count = np.diff(np.r_[pair_start, dets.size])
    pair_keys = det_key[pair_start]
    pair_of_det = np.repeat(np.arange(pair_start.size), pair_count)
    pos_in_pair = np.arange(dets.size) - np.repeat(pair_start, pair_count)
    det_index = np.full(n, -1, dtype=np.int64)
    det_index[dets] = np.arange(dets.size)
    pair_tracks = [
        gt.pair_tracks[int(k // gt.num_categories), int(k % gt.num_categories)] for k in pair_keys
    ]
    sizes = np.array([len(t) for t in pair_tracks])
    for width in np.unique(sizes):
        members = np.flatnonzero(sizes == width)
        local = np.full(pair_start.size, -1, dtype=np.int64)
        local[members] = np.arange(members.size)
        depth = int(pair_count[members].max())
        iou_arr = np.full((members.size, depth, width), -1.0)
        e = det_index[kept_pos]
        sel = local[pair_of_det[e]] >= 0
        iou_arr[local[pair_of_det[e[sel]]], pos_in_pair[e[sel]], slot[track[sel]]] = iou[sel]
        tracks = np.array([pair_tracks[p] for p in members], dtype=np.int64)  # [P, G]
        match = greedy_match(
            iou_arr,
            pair_count[members],
            gt_ignore[:, tracks].transpose(1, 0, 2),
            gt.track_crowd[tracks],
            IOU_THRS,
        )  # [P, A, T, D]
        in_bucket = np.flatnonzero(local[pair_of_det] >= 0)
        p, d = local[pair_of_det[in_bucket]], pos_in_pair[in_bucket]
        m = match[p, :, :, d]  # [n, A, T]
        track_of = np.where(
            m >= 0, tracks[p][np.arange(p.size)[:, None, None], np.maximum(m, 0)], -1
        )
        out[:, :, dets[in_bucket]] = track_of.transpose(1, 2, 0)
    return out


def evaluate_loaded(
    gt: VideoGroundTruth,
    res: ResultsPart,
    semantics: str = "lvvis",
) -> VideoEvalResult:
    """Score reduced results against loaded ground truth."""
    num_cats = gt.num_categories
    top = _select_top(res, num_cats, MAX_DETS[-1])
    kept_pos = np.full(res.count, -1, dtype=np.int64)
    kept_pos[top["row"]] = np.arange(len(top["row"]))
    keep = kept_pos[res.pairs.row] >= 0
    pairs = PairIoUs(
        kept_pos[res.pairs.row[keep]],
        res.pairs.track[keep],
        res.pairs.iou[keep],
        res.pairs.union_zero[keep],
    )

    lo, hi = AREA_RANGES[:, 0][:, None], AREA_RANGES[:, 1][:, None]
    gt_ignore = (gt.track_area[None, :] < lo) | (gt.track_area[None, :] > hi)  # [A, tracks]
    if semantics == "ytvis":
        gt_ignore |= gt.track_crowd[None, :]
    matched_track = _match_all(gt, top, pairs, gt_ignore)  # [A, T, N]
    any_match = matched_track >= 0
    none = len(gt.track_id)  # a padding slot for "no match", so empty GT indexes fine
    safe = np.where(any_match, matched_track, none)
    matched = any_match & (np.r_[gt.track_id, 0][safe] != 0)
    area_index = np.arange(len(AREA_RANGES))[:, None, None]
    ignored = np.pad(gt_ignore, ((0, 0), (0, 1)))[area_index, safe]
    outside = (top["area"][None, :] < lo) | (top["area"][None, :] > hi)  # [A, N]
    ignored |= ~matched & outside[:, None, :]

    npig = np.zeros((num_cats, len(AREA_RANGES)), dtype=np.int64)
    for a in range(len(AREA_RANGES)):
        npig[:, a] = np.bincount(gt.track_category[~gt_ignore[a]], minlength=num_cats)
    acc = accumulate(
        top["category"],
        top["score"],
        top["video"],
        top["rank"],
        matched,
        ignored,
        npig,
        num_cats,
        MAX_DETS,
        REC_THRS,
        precision_combos(MAX_DETS),
    )
    stats, base, novel = summarize(acc, IOU_THRS, MAX_DETS, gt.base_ids, gt.novel_ids)
    warnings = list(gt.warnings)
    if res.length_mismatch:
        warnings.append(
            f"{res.length_mismatch} result(s) have a 'segmentations' list whose length "
            "differs from their video's; frames are paired up to the shorter list, "
            "as in the official evaluator"
        )
    if res.dropped:
        warnings.append(f"{res.dropped} result(s) with a category not in the ground truth dropped")
    return VideoEvalResult(
        stats=stats,
        stats_base=base,
        stats_novel=novel,
        category_ids=gt.category_ids,
        accumulated=acc,
        mask_size_warnings=int(pairs.union_zero.sum()),
        warnings=warnings,
    )


def default_workers() -> int:
    return max(
        1,
        min(
            2,
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1,
        ),
    )


def evaluate_video(
    gt: dict | str | os.PathLike | VideoGroundTruth,
    results: list | str | os.PathLike,
    *,
    semantics: str = "lvvis",
    on_unknown_category: str = "error",
    frame_count: str = "zip",
    workers: int | None = None,
) -> VideoEvalResult:
    """Video AP of ``results`` (a results list or JSON file) against ``gt`` (dict or JSON file).

    ``semantics``: "lvvis" (the official LV-VIS numbers) or "ytvis" (crowd GT ignored, no int()).
    ``on_unknown_category``: "error" or "drop" (the official evaluator drops them silently).
    ``frame_count``: "zip" (official: lists of any length, paired up to the shorter) or "error".
    ``workers``: processes for reading a results file (default: up to 2).
    Bad input raises :class:`~ov2seg_jax.evaluation.errors.EvalInputError`.
    """
    if on_unknown_category not in ("error", "drop"):
        raise ValueError(
            f"on_unknown_category must be 'error' or 'drop', got {on_unknown_category!r}"
        )
    if frame_count not in ("zip", "error"):
        raise ValueError(f"frame_count must be 'zip' or 'error', got {frame_count!r}")
    loaded = gt if isinstance(gt, VideoGroundTruth) else load_video_gt(gt, semantics)
    options = ResultOptions(on_unknown_category=on_unknown_category, frame_count=frame_count)
    res = read_results(
        results,
        GtFrameTable(loaded),
        options,
        workers=default_workers() if workers is None else workers,
    )
    return evaluate_loaded(loaded, res, semantics)
