"""Results in the LV-VIS / YouTube-VIS format, and a printed table of tracks.

A result is ``{video_id, category_id, score, segmentations}`` with one compressed COCO RLE per
frame (``counts`` as str). The evaluation loop writes an RLE for every frame, as the original
does; prediction for users writes null for frames where the mask is empty (the evaluator treats
null and an empty mask alike).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pycocotools.mask as mask_util

from ov2seg_jax.atomic_file import atomic_write
from ov2seg_jax.inference.predictor import VideoPrediction
from ov2seg_jax.inference.streaming import StreamedPrediction


def encode_masks(masks: np.ndarray, null_empty: bool = False) -> list[dict | None]:
    """(T, H, W) bool -> one compressed COCO RLE per frame (``counts`` as str); with
    ``null_empty`` an empty frame gives None instead."""
    rles = mask_util.encode(np.asfortranarray(np.transpose(masks, (1, 2, 0)).astype(np.uint8)))
    out: list[dict | None] = []
    for t, rle in enumerate(rles):
        rle["counts"] = rle["counts"].decode("ascii")
        out.append(None if null_empty and not masks[t].any() else rle)
    return out


def to_results(
    video_id: int, pred: VideoPrediction, category_ids: Sequence[int] | None = None
) -> list[dict]:
    """``[{video_id, category_id, score, segmentations}]``; ``category_ids[label]`` maps a
    classifier row to its dataset id (default: row + 1, the original's convention)."""
    out = []
    for score, label, masks in zip(pred.scores, pred.labels, pred.masks, strict=True):
        cat = int(category_ids[label]) if category_ids is not None else int(label) + 1
        out.append(
            {
                "video_id": int(video_id),
                "category_id": cat,
                "score": float(score),
                "segmentations": encode_masks(masks),
            }
        )
    return out


def streamed_results(
    video_id: int, pred: StreamedPrediction, category_ids: Sequence[int] | None = None
) -> list[dict]:
    """:func:`to_results` for a streamed prediction (its RLEs, null for empty frames)."""
    return [
        {
            "video_id": int(video_id),
            "category_id": int(category_ids[label]) if category_ids is not None else int(label) + 1,
            "score": float(score),
            "segmentations": segs,
        }
        for score, label, segs in zip(pred.scores, pred.labels, pred.segmentations, strict=True)
    ]


def write_results(path: str, results: list[dict]) -> str:
    """Write ``results`` as JSON to ``path`` (temporary file + rename: never a partial file)."""
    with atomic_write(path) as f:
        json.dump(results, f)
    return path


def _spans(pred) -> list[tuple[int, int]]:
    if hasattr(pred, "spans"):
        return pred.spans()
    out = []
    for masks in pred.masks:
        visible = np.flatnonzero(masks.reshape(masks.shape[0], -1).any(axis=1))
        out.append((int(visible[0]), int(visible[-1])) if visible.size else (-1, -1))
    return out


def format_tracks(
    pred: VideoPrediction | StreamedPrediction,
    class_names: Sequence[str] | None = None,
    min_score: float = 0.0,
) -> str:
    """One line per instance: id, class, score, first and last frame with a non-empty mask
    (-1 when the mask is empty in every frame)."""
    lines = [f"{'id':>3}  {'class':<28} {'score':>7}  {'first':>5}  {'last':>5}"]
    for i, (score, label, (first, last)) in enumerate(
        zip(pred.scores, pred.labels, _spans(pred), strict=True)
    ):
        if score < min_score:
            continue
        name = class_names[label] if class_names is not None else str(int(label))
        lines.append(f"{i:>3}  {name[:28]:<28} {float(score):>7.4f}  {first:>5}  {last:>5}")
    return "\n".join(lines)
