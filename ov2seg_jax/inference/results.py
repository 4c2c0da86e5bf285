"""Results in the LV-VIS / YouTube-VIS format, and a printed table of tracks."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import pycocotools.mask as mask_util

from ov2seg_jax.inference.predictor import VideoPrediction


def encode_masks(masks: np.ndarray) -> list[dict]:
    """(T, H, W) bool -> one compressed COCO RLE per frame (``counts`` as str)."""
    rles = mask_util.encode(np.asfortranarray(np.transpose(masks, (1, 2, 0)).astype(np.uint8)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return list(rles)


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


def write_results(path: str, results: list[dict]) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f)
    return path


def format_tracks(
    pred: VideoPrediction, class_names: Sequence[str] | None = None, min_score: float = 0.0
) -> str:
    """One line per instance: id, class, score, first and last frame with a non-empty mask."""
    lines = [f"{'id':>3}  {'class':<28} {'score':>7}  {'first':>5}  {'last':>5}"]
    for i, (score, label, masks) in enumerate(
        zip(pred.scores, pred.labels, pred.masks, strict=True)
    ):
        if score < min_score:
            continue
        visible = np.flatnonzero(masks.reshape(masks.shape[0], -1).any(axis=1))
        first, last = (int(visible[0]), int(visible[-1])) if visible.size else (-1, -1)
        name = class_names[label] if class_names is not None else str(int(label))
        lines.append(f"{i:>3}  {name[:28]:<28} {float(score):>7.4f}  {first:>5}  {last:>5}")
    return "\n".join(lines)
