"""Instance read-out (the original's ``instance_inference``) and the evaluator's final mask resize.

:func:`instance_inference` turns the tracked video (frame-averaged logits, per-frame logits and the
aligned mask logits) into the top-K scored (query, class) instances:

1. video score of every (query, class) pair: ``sqrt(sigmoid(cls[q, c]) * softmax(obj[q])[0])`` over
   the C real classes (the last, background column is dropped);
2. the K best pairs of the flattened (Q * C) scores; ``query = flat // C``, ``label = flat % C``
   (K = ``top_k`` is an upper bound: a video with fewer pairs keeps them all, where the original's
   ``torch.topk`` would fail);
3. each frame's own score for that pair (same formula on the per-frame logits); frames scoring below
   ``0.1 *`` the video score have their whole mask set to the constant ``-1``;
4. mask score = mean sigmoid of the mask logits over the positive pixels of all frames
   (``sum(sigmoid(m) * (m > 0)) / (count(m > 0) + 1e-6)``); final score = video score * mask score.

**Order of instances.** The original uses an *unsorted* ``torch.topk``, so the order in which it
returns instances is an implementation detail of torch. Here the K pairs are chosen by video score
(equal scores at the K-th place: lower flat index first) and then listed by descending final
score, ties by ascending flat index. Compare with the original as a set keyed by (query, label);
the fixtures' ``canonical_order`` lists theirs by descending final score too.

**One rule, two callers.** Each step is a function of its own (:func:`choose_instances`,
:func:`ignored_frames`, :func:`blank_ignored_frames`, :func:`mask_score_sums` with
:func:`mask_scores_from_sums`, :func:`rank_instances`). :func:`instance_inference` applies them to
a whole tracked video; the streaming predictor (:mod:`ov2seg_jax.inference.streaming`) applies the
same functions window by window, so batch and streaming cannot drift apart.

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


class ChosenInstances(NamedTuple):
    """The top-K (query, class) pairs of a video, in video-score order (ties: lower flat index).

    ``flat_index`` (K,) int64 ``query * C + class``; ``class_scores`` (K,) float32 video scores;
    ``query_index`` (K,) int64; ``labels`` (K,) int64.
    """

    flat_index: np.ndarray
    class_scores: np.ndarray
    query_index: np.ndarray
    labels: np.ndarray


def choose_instances(mask_cls, mask_object_cls, top_k: int) -> ChosenInstances:
    """Step 1-2 of the read-out: the ``top_k`` best (query, class) pairs by video score.

    ``mask_cls`` (Q, C+1) and ``mask_object_cls`` (Q, 2): frame-averaged logits.

    **The top-K rule:** ``top_k`` is an upper bound. A video with fewer than ``top_k`` pairs
    (Q * C, e.g. a small vocabulary) keeps all of them; the original's ``torch.topk`` would fail
    there instead. ``top_k < 1`` is an error.
    """
    cls = np.asarray(mask_cls, dtype=np.float32)
    obj = np.asarray(mask_object_cls, dtype=np.float32)
    _check_shape("mask_cls", cls, (None, None), "(Q, C+1)")
    q, c1 = cls.shape
    if c1 < 2:
        raise ValueError(
            f"mask_cls must hold at least one class plus background, got shape {cls.shape}"
        )
    num_classes = c1 - 1
    _check_shape("mask_object_cls", obj, (q, 2), "(Q, 2)")
    top_k = int(top_k)
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    top_k = min(top_k, q * num_classes)

    flat_scores = pair_scores(cls, obj).reshape(-1)  # (Q*C,), index = query * C + class
    # The K best pairs; among equal scores at the boundary the lower flat index wins (a stable
    # sort of the negated scores). The original's unsorted torch.topk leaves that choice open.
    flat_index = np.argsort(-flat_scores, kind="stable")[:top_k].astype(np.int64)
    return ChosenInstances(
        flat_index=flat_index,
        class_scores=flat_scores[flat_index],
        query_index=flat_index // num_classes,
        labels=flat_index % num_classes,
    )


def ignored_frames(frame_class_logits, frame_object_logits, class_scores) -> np.ndarray:
    """Step 3: which frames of each chosen instance are blanked (bool (..., K)).

    ``frame_class_logits`` (..., K): each frame's logit of the instance's class;
    ``frame_object_logits`` (..., K, 2): each frame's object logits of the instance's query;
    ``class_scores`` (K,): the video scores. A frame is ignored when its own score
    ``sqrt(sigmoid(cls) * softmax(obj)[0])`` is below ``0.1 *`` the video score.
    """
    cls_prob = _sigmoid(frame_class_logits)
    obj_prob = _object_probability(frame_object_logits)
    frame_scores = np.sqrt(cls_prob * obj_prob).astype(np.float32)
    return frame_scores < np.asarray(class_scores, np.float32) * np.float32(FRAME_IGNORE_RATIO)


def blank_ignored_frames(masks: np.ndarray, ignored: np.ndarray) -> None:
    """Write the original's constant into the ignored frames' masks, in place.

    ``masks`` (A, B, h, w) float32 and ``ignored`` (A, B) bool in the same layout ((K, T) or (T, K)).
    """
    masks[ignored] = np.float32(IGNORED_FRAME_FILL)


def mask_score_sums(mask_logits: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray]:
    """Step 4's sums over ``axis``: ``sum(sigmoid(m) * (m > 0))`` and ``count(m > 0)``, float64.

    Sums of separate frames add up, so a video can be scored window by window; finish with
    :func:`mask_scores_from_sums`. (The original sums in float32; the difference is far below
    1e-6.)
    """
    m = np.asarray(mask_logits, dtype=np.float32)
    positive = m > 0
    num = np.sum(np.where(positive, _sigmoid(m), np.float32(0.0)), axis=axis, dtype=np.float64)
    den = np.sum(positive, axis=axis, dtype=np.float64)
    return num, den


def mask_scores_from_sums(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Mean sigmoid over the positive pixels: ``num / (den + 1e-6)`` as float32."""
    return (np.asarray(num) / (np.asarray(den) + MASK_SCORE_EPS)).astype(np.float32)


def mask_score(mask_logits: np.ndarray) -> np.ndarray:
    """Mean sigmoid over the positive pixels of each instance: (K, ...) -> (K,) float32."""
    m = np.asarray(mask_logits, dtype=np.float32)
    return mask_scores_from_sums(*mask_score_sums(m.reshape(m.shape[0], -1), axis=1))


def rank_instances(
    chosen: ChosenInstances, mask_scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Final scores (video score * mask score, (K,) float32) and the order the instances are
    listed in: descending final score, ties by ascending flat index."""
    scores = (chosen.class_scores * np.asarray(mask_scores, np.float32)).astype(np.float32)
    return scores, np.lexsort((chosen.flat_index, -scores))


def instance_inference(
    mask_cls,
    mask_object_cls,
    mask_pred,
    mask_per_frame_cls,
    mask_per_frame_object_cls,
    top_k: int,
) -> InstanceResult:
    """The original's instance read-out for one video (the steps of the module docstring).

    ``mask_cls`` (Q, C+1) and ``mask_object_cls`` (Q, 2): frame-averaged aligned logits;
    ``mask_pred`` (Q, T, h, w): aligned mask logits; ``mask_per_frame_cls`` (Q, T, C+1) and
    ``mask_per_frame_object_cls`` (Q, T, 2): aligned per-frame logits; ``top_k``: at most how
    many (query, class) pairs to keep (``TEST.DETECTIONS_PER_IMAGE``; see
    :func:`choose_instances` for the rule when it exceeds Q * C).
    """
    cls = np.asarray(mask_cls, dtype=np.float32)
    masks = np.asarray(mask_pred, dtype=np.float32)
    pf_cls = np.asarray(mask_per_frame_cls, dtype=np.float32)
    pf_obj = np.asarray(mask_per_frame_object_cls, dtype=np.float32)
    _check_shape("mask_cls", cls, (None, None), "(Q, C+1)")
    q, c1 = cls.shape
    _check_shape("mask_pred", masks, (q, None, None, None), "(Q, T, h, w)")
    t = masks.shape[1]
    _check_shape("mask_per_frame_cls", pf_cls, (q, t, c1), "(Q, T, C+1)")
    _check_shape("mask_per_frame_object_cls", pf_obj, (q, t, 2), "(Q, T, 2)")

    chosen = choose_instances(cls, mask_object_cls, top_k)
    query_index = chosen.query_index
    frame_ignored = ignored_frames(
        pf_cls[query_index, :, chosen.labels].T,  # (T, K)
        pf_obj[query_index].transpose(1, 0, 2),  # (T, K, 2)
        chosen.class_scores,
    ).T  # (K, T)
    inst_masks = masks[query_index]  # a copy (K, T, h, w)
    blank_ignored_frames(inst_masks, frame_ignored)
    mask_scores = mask_score(inst_masks)
    scores, order = rank_instances(chosen, mask_scores)
    return InstanceResult(
        scores=scores[order],
        labels=chosen.labels[order],
        query_index=query_index[order],
        topk_flat_index=chosen.flat_index[order],
        pred_masks=inst_masks[order],
        frame_ignored=frame_ignored[order],
        class_scores=chosen.class_scores[order],
        mask_scores=mask_scores[order],
    )


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
