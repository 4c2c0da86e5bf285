"""Instance read-out (the original's ``instance_inference``) and the evaluator's final mask resize.

:func:`instance_inference` turns the tracked video (frame-averaged logits, per-frame logits and the
aligned mask logits) into the top-K scored (query, class) instances:

1. video score of every (query, class) pair: ``sqrt(sigmoid(cls[q, c]) * softmax(obj[q])[0])`` over
   the C real classes (the last, background column is dropped);
2. the K best pairs of the flattened (Q * C) scores; ``query = flat // C``, ``label = flat % C``;
3. each frame's own score for that pair (same formula on the per-frame logits); frames scoring below
   ``0.1 *`` the video score have their whole mask set to the constant ``-1``;
4. mask score = mean sigmoid of the mask logits over the positive pixels of all frames
   (``sum(sigmoid(m) * (m > 0)) / (count(m > 0) + 1e-6)``); final score = video score * mask score.

**Order of instances.** The original uses an *unsorted* ``torch.topk``, so the order in which it
returns instances is an implementation detail of torch. Here the K pairs are chosen by video score
(equal scores at the K-th place: lower flat index first) and then listed by descending final
score, ties by ascending flat index. Compare with the original as a set keyed by (query, label);
the fixtures' ``canonical_order`` lists theirs by descending final score too.

:func:`masks_to_output` is the evaluator's ``sem_seg_postprocess`` followed by ``> 0``: bilinear
resize (PyTorch ``align_corners=False``, no antialias) of the stride-4 mask logits to the padded
input size, crop to the unpadded image size, bilinear resize to the requested output size.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import NamedTuple

import jax
import numpy as np

from ov2seg_jax.models.interpolate import resize_bilinear

FRAME_IGNORE_RATIO = 0.1  # frames scoring below this fraction of the video score are blanked
IGNORED_FRAME_FILL = -1.0  # the constant the original writes into blanked frames (not -inf)
MASK_SCORE_EPS = 1e-6


class InstanceResult(NamedTuple):
    """Top-K instances of one video, sorted by descending ``scores`` (ties: ascending flat index).

    ``scores`` (K,) float32: final score (video score * mask score).
    ``labels`` (K,) int64: 0-based class index.
    ``query_index`` (K,) int64: tracked query (slot) of each instance.
    ``topk_flat_index`` (K,) int64: ``query_index * C + labels``.
    ``pred_masks`` (K, T, h, w) float32: the query's aligned mask logits, ignored frames set to -1.
    ``frame_ignored`` (K, T) bool: frames blanked by the per-frame rule.
    ``class_scores`` (K,) float32: the video score the top-K was taken over.
    ``mask_scores`` (K,) float32: mean sigmoid over the positive mask pixels.
    """

    scores: np.ndarray
    labels: np.ndarray
    query_index: np.ndarray
    topk_flat_index: np.ndarray
    pred_masks: np.ndarray
    frame_ignored: np.ndarray
    class_scores: np.ndarray
    mask_scores: np.ndarray


def _sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore"):  # exp(-x) = inf for very negative x gives exactly 0
        return (np.float32(1.0) / (np.float32(1.0) + np.exp(-x))).astype(np.float32)


def _object_probability(obj_logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (size 2) of ``obj_logits``; returns the object entry (index 0)."""
    obj_logits = np.asarray(obj_logits, dtype=np.float32)
    shifted = obj_logits - obj_logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return (e[..., 0] / e.sum(axis=-1)).astype(np.float32)


def pair_scores(cls_logits, obj_logits) -> np.ndarray:
    """``sqrt(sigmoid(cls[..., :-1]) * softmax(obj)[..., :1])``.

    ``cls_logits`` (..., C+1), ``obj_logits`` (..., 2) -> scores (..., C) float32.
    """
    cls_prob = _sigmoid(np.asarray(cls_logits, dtype=np.float32)[..., :-1])
    obj_prob = _object_probability(obj_logits)[..., None]
    return np.sqrt(cls_prob * obj_prob).astype(np.float32)


def _check_shape(name: str, arr: np.ndarray, expected: tuple[int | None, ...], layout: str) -> None:
    ok = arr.ndim == len(expected) and all(
        e is None or e == s for e, s in zip(expected, arr.shape, strict=False)
    )
    if not ok:
        want = tuple("?" if e is None else e for e in expected)
        raise ValueError(f"{name} must be {layout} = {want}, got shape {arr.shape}")


def instance_inference(
    mask_cls,
    mask_object_cls,
    mask_pred,
    mask_per_frame_cls,
    mask_per_frame_object_cls,
    top_k: int,
) -> InstanceResult:
    """The original's instance read-out for one video.

    ``mask_cls`` (Q, C+1) and ``mask_object_cls`` (Q, 2): frame-averaged aligned logits;
    ``mask_pred`` (Q, T, h, w): aligned mask logits; ``mask_per_frame_cls`` (Q, T, C+1) and
    ``mask_per_frame_object_cls`` (Q, T, 2): aligned per-frame logits; ``top_k``: how many
    (query, class) pairs to keep (``TEST.DETECTIONS_PER_IMAGE``; the original fails when it
    exceeds Q * C, and so does this).
    """
    cls = np.asarray(mask_cls, dtype=np.float32)
    obj = np.asarray(mask_object_cls, dtype=np.float32)
    masks = np.asarray(mask_pred, dtype=np.float32)
    pf_cls = np.asarray(mask_per_frame_cls, dtype=np.float32)
    pf_obj = np.asarray(mask_per_frame_object_cls, dtype=np.float32)

    _check_shape("mask_cls", cls, (None, None), "(Q, C+1)")
    q, c1 = cls.shape
    if c1 < 2:
        raise ValueError(
            f"mask_cls must hold at least one class plus background, got shape {cls.shape}"
        )
    num_classes = c1 - 1
    _check_shape("mask_object_cls", obj, (q, 2), "(Q, 2)")
    _check_shape("mask_pred", masks, (q, None, None, None), "(Q, T, h, w)")
    t = masks.shape[1]
    _check_shape("mask_per_frame_cls", pf_cls, (q, t, c1), "(Q, T, C+1)")
    _check_shape("mask_per_frame_object_cls", pf_obj, (q, t, 2), "(Q, T, 2)")
    top_k = int(top_k)
    if not 1 <= top_k <= q * num_classes:
        raise ValueError(f"top_k must be in [1, Q*C = {q * num_classes}], got {top_k}")

    flat_scores = pair_scores(cls, obj).reshape(-1)  # (Q*C,), index = query * C + class
    # The K best pairs; among equal scores at the boundary the lower flat index wins (a stable
    # sort of the negated scores). The original's unsorted torch.topk leaves that choice open.
    flat_index = np.argsort(-flat_scores, kind="stable")[:top_k].astype(np.int64)
    class_scores = flat_scores[flat_index]
    query_index = flat_index // num_classes
    labels = flat_index % num_classes

    # Each frame's own score for the chosen (query, class): (K, T).
    frame_cls = pf_cls[query_index, :, labels]  # (K, T)
    frame_cls_prob = _sigmoid(frame_cls)
    frame_obj_prob = _object_probability(pf_obj[query_index])  # (K, T)
    frame_scores = np.sqrt(frame_cls_prob * frame_obj_prob).astype(np.float32)
    frame_ignored = frame_scores < class_scores[:, None] * np.float32(FRAME_IGNORE_RATIO)

    inst_masks = masks[query_index]  # a copy (K, T, h, w)
    inst_masks[frame_ignored] = np.float32(IGNORED_FRAME_FILL)
    mask_scores = mask_score(inst_masks)
    scores = (class_scores * mask_scores).astype(np.float32)
    # Present the instances by descending final score, ties by ascending flat index.
    order = np.lexsort((flat_index, -scores))
    return InstanceResult(
        scores=scores[order],
        labels=labels[order],
        query_index=query_index[order],
        topk_flat_index=flat_index[order],
        pred_masks=inst_masks[order],
        frame_ignored=frame_ignored[order],
        class_scores=class_scores[order],
        mask_scores=mask_scores[order],
    )


def mask_score(mask_logits: np.ndarray) -> np.ndarray:
    """Mean sigmoid over the positive pixels of each instance: (K, ...) -> (K,) float32.

    ``sum(sigmoid(m) * (m > 0)) / (count(m > 0) + 1e-6)`` over every axis but the first; the sums
    are accumulated in float64 (the original sums in float32; the difference is far below 1e-6).
    """
    m = np.asarray(mask_logits, dtype=np.float32)
    m = m.reshape(m.shape[0], -1)
    positive = m > 0
    num = np.sum(np.where(positive, _sigmoid(m), np.float32(0.0)), axis=1, dtype=np.float64)
    den = np.sum(positive, axis=1, dtype=np.float64) + MASK_SCORE_EPS
    return (num / den).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Final resize to the output resolution
# --------------------------------------------------------------------------------------------


def _size2(name: str, size) -> tuple[int, int]:
    vals = tuple(int(v) for v in np.asarray(size).reshape(-1))
    if len(vals) != 2 or min(vals) <= 0:
        raise ValueError(f"{name} must be two positive integers (height, width), got {size!r}")
    return vals  # type: ignore[return-value]


@functools.lru_cache(maxsize=32)
def _resize_fn(padded: tuple[int, int], image: tuple[int, int], output: tuple[int, int]):
    """Jitted (N, h, w) logits -> (N, H, W) bool for one set of sizes."""

    def fn(x):
        mid = resize_bilinear(x, padded, layout="NCHW")
        mid = mid[:, : image[0], : image[1]]
        out = resize_bilinear(mid, output, layout="NCHW")
        return out > 0

    return jax.jit(fn)


def _chunk_frames(grid: tuple[int, int], padded, image, output, budget_bytes: int) -> int:
    per_frame = 4 * (
        grid[0] * grid[1]
        + padded[0] * padded[1]
        + image[0] * image[1]
        + 2 * output[0] * output[1]
        + padded[0] * grid[1]
        + image[0] * output[1]
    )
    return max(1, budget_bytes // per_frame)


def iter_masks_to_output(
    mask_logits,
    padded_size,
    image_size,
    output_size,
    *,
    budget_bytes: int = 64 << 20,
) -> Iterator[tuple[int, np.ndarray]]:
    """Like :func:`masks_to_output`, yielding ``(start, masks)`` chunks of the leading axes.

    ``mask_logits`` (..., h, w) is viewed as (N, h, w); each chunk covers rows
    ``start:start + len(masks)`` of it, as a bool array (n, H_out, W_out). The float32 working
    memory of one chunk stays under about ``budget_bytes``.
    """
    m = np.asarray(mask_logits, dtype=np.float32)
    if m.ndim < 2:
        raise ValueError(f"mask_logits must be (..., h, w), got shape {m.shape}")
    padded = _size2("padded_size", padded_size)
    image = _size2("image_size", image_size)
    output = _size2("output_size", output_size)
    if image[0] > padded[0] or image[1] > padded[1]:
        raise ValueError(f"image_size {image} must fit inside padded_size {padded}")
    grid = (m.shape[-2], m.shape[-1])
    flat = m.reshape(-1, *grid)
    n = flat.shape[0]
    if n == 0:
        return
    chunk = min(n, _chunk_frames(grid, padded, image, output, budget_bytes))
    fn = _resize_fn(padded, image, output)
    for start in range(0, n, chunk):
        part = flat[start : start + chunk]
        rows = part.shape[0]
        if rows < chunk:  # pad the last chunk so one compiled shape serves every chunk
            part = np.concatenate([part, np.zeros((chunk - rows, *grid), np.float32)], axis=0)
        yield start, np.asarray(fn(part))[:rows]


def masks_to_output(
    mask_logits,
    padded_size,
    image_size,
    output_size,
    *,
    budget_bytes: int = 64 << 20,
) -> np.ndarray:
    """Binary masks at the output resolution, as the evaluator makes them.

    ``mask_logits`` (..., h, w) float: stride-4 mask logits of the padded frame (e.g. (K, T, h, w)).
    ``padded_size`` (Hp, Wp): the padded input size; ``image_size`` (Hi, Wi): the unpadded input
    size; ``output_size`` (H, W): the requested output size (the video's ``height``, ``width``).
    Returns bool (..., H, W): bilinear to ``padded_size``, crop to ``image_size``, bilinear to
    ``output_size``, then ``> 0``. Works through the frames in chunks (see
    :func:`iter_masks_to_output`), so only the boolean result is held in full.
    """
    m = np.asarray(mask_logits)
    output = _size2("output_size", output_size)
    lead = m.shape[:-2]
    result = np.empty((int(np.prod(lead, dtype=np.int64)), *output), dtype=bool)
    for start, part in iter_masks_to_output(
        m, padded_size, image_size, output, budget_bytes=budget_bytes
    ):
        result[start : start + part.shape[0]] = part
    return result.reshape(*lead, *output)
