"""Spatio-temporal mask IoU between predicted tracks and GT tracks, the official way.

For a prediction d and a GT track g of the same video and category the official code walks the
frames with ``zip`` (so it stops at the shorter list) and sums, over frames where an entry is
truthy: both present -> I += |d & g|, U += |d | g|; one present -> U += its area. pycocotools
gives an empty mask for the merge of two masks of different sizes, so such a frame adds nothing to
either sum. IoU = I / U, or 0 when U = 0 (the official "Mask sizes ... may not match!" warning).

With areas known, U = S - I where S sums both areas over the zipped frames (minus the frames whose
sizes differ), so only intersections are needed. They are computed only where they can matter:
no IoU threshold is below 0.5 and I <= I_ub = sum of min(|d|, |g|) over frames where both are
present, so a pair with 3 * I_ub < S has IoU < 0.5 and is never matched; its IoU is reported as 0.
The other pairs get exact integer intersections from one ``pycocotools.mask.iou`` call per
(video, frame) with crowd flags set (crowd IoU is |d & g| / |d|, times |d| gives |d & g| back).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from .video_gt import VideoGroundTruth


@dataclass
class PendingTrack:
    """A predicted track whose (video, category) has GT: what the IoU needs of it."""

    row: int  # index of the result in its part of the results file
    video: int  # video index
    category: int  # category index
    frames: list  # the raw per-frame entries (truthy = present)
    area: np.ndarray  # int64 per frame, 0 where absent
    present: np.ndarray  # bool per frame
    size: np.ndarray  # int64 size code per frame, 0 where absent


@dataclass
class PairIoUs:
    """IoU of every (prediction, GT track) pair of the same video and category."""

    row: np.ndarray  # prediction (result row)
    track: np.ndarray  # GT track index
    iou: np.ndarray  # float64; 0 for pairs proven below 0.5
    union_zero: np.ndarray  # U == 0 (the official warning)

    @staticmethod
    def empty() -> PairIoUs:
        z = np.zeros(0, dtype=np.int64)
        return PairIoUs(z, z.copy(), np.zeros(0), np.zeros(0, dtype=bool))

    @staticmethod
    def concat(parts: list[PairIoUs]) -> PairIoUs:
        if not parts:
            return PairIoUs.empty()
        return PairIoUs(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("row", "track", "iou", "union_zero")
            )
        )


class GtFrameTable:
    """GT per-frame areas, presence and sizes stacked into [tracks, frames] arrays."""

    def __init__(self, gt: VideoGroundTruth) -> None:
        n = len(gt.frame_area)
        self.length = np.array([len(a) for a in gt.frame_area], dtype=np.int64)
        width = int(self.length.max()) if n else 0
        self.area = np.zeros((n, width), dtype=np.int64)
        self.present = np.zeros((n, width), dtype=bool)
        self.size = np.zeros((n, width), dtype=np.int64)
        for t in range(n):
            k = self.length[t]
            self.area[t, :k] = gt.frame_area[t]
            self.present[t, :k] = gt.frame_present[t]
            self.size[t, :k] = gt.frame_size[t]
        self.gt = gt


def _stack(rows: list[np.ndarray], width: int, dtype: type) -> np.ndarray:
    out = np.zeros((len(rows), width), dtype=dtype)
    for i, r in enumerate(rows):
        k = min(len(r), width)
        out[i, :k] = r[:k]
    return out


def _pad(a: np.ndarray, width: int) -> np.ndarray:
    if a.shape[1] >= width:
        return a[:, :width]
    return np.pad(a, ((0, 0), (0, width - a.shape[1])))


def pair_ious(table: GtFrameTable, pending: list[PendingTrack]) -> PairIoUs:
    """IoUs of the given predictions against the GT tracks of their (video, category)."""
    gt = table.gt
    rows: list[int] = []
    tracks: list[int] = []
    for i, p in enumerate(pending):
        for g in gt.pair_tracks.get((p.video, p.category), ()):
            rows.append(i)
            tracks.append(g)
    if not rows:
        return PairIoUs.empty()
    pr = np.array(rows, dtype=np.int64)
    pg = np.array(tracks, dtype=np.int64)
    d_len = np.array([len(p.area) for p in pending], dtype=np.int64)
    width = int(min(d_len.max(), table.length.max()))
    d_area = _stack([p.area for p in pending], width, np.int64)[pr]
    d_present = _stack([p.present for p in pending], width, bool)[pr]
    d_size = _stack([p.size for p in pending], width, np.int64)[pr]
    g_area = _pad(table.area, width)[pg]
    g_present = _pad(table.present, width)[pg]
    g_size = _pad(table.size, width)[pg]

    zipped = np.arange(width)[None, :] < np.minimum(d_len[pr], table.length[pg])[:, None]
    both = d_present & g_present  # both present implies inside the zipped frames
    same = d_size == g_size
    counted = zipped & ~(both & ~same)  # frames of different mask sizes add nothing
    area_sum = np.where(counted, d_area + g_area, 0).sum(axis=1)
    overlap = both & same
    bound = np.where(overlap, np.minimum(d_area, g_area), 0).sum(axis=1)
    needed = 3 * bound >= area_sum

    inter = np.zeros(len(pr), dtype=np.int64)
    pair_idx, frame_idx = np.nonzero(needed[:, None] & overlap)
    if pair_idx.size:
        videos = np.array([pending[r].video for r in pr[pair_idx]], dtype=np.int64)
        key = videos * width + frame_idx
        order = np.argsort(key, kind="stable")
        pair_idx, frame_idx, key = pair_idx[order], frame_idx[order], key[order]
        bounds = np.flatnonzero(np.diff(key)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, key.size], strict=True):
            pairs = pair_idx[lo:hi]
            t = int(frame_idx[lo])
            d_rows, d_pos = np.unique(pr[pairs], return_inverse=True)
            g_rows, g_pos = np.unique(pg[pairs], return_inverse=True)
            dts = [pending[r].frames[t] for r in d_rows]
            gts = [gt.frame_rle[g][t] for g in g_rows]
            o = np.asarray(mask_utils.iou(dts, gts, [1] * len(gts)), dtype=np.float64)
            o = o.reshape(len(dts), len(gts))[d_pos, g_pos]
            inter[pairs] += np.where(o > 0, np.rint(o * d_area[pairs, t]), 0).astype(np.int64)

    union = area_sum - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    iou = np.where(needed, iou, 0.0)
    return PairIoUs(
        row=np.array([pending[r].row for r in pr], dtype=np.int64),
        track=pg,
        iou=iou,
        union_zero=union == 0,
    )
