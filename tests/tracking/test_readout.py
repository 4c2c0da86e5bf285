"""Instance read-out and final masks: parity with the original's ``instance_inference`` and the
evaluator's ``sem_seg_postprocess``.

The original's top-k is unsorted, so instances are compared as sets keyed by (query, label); ours
are listed by descending final score (ties by flat index), the order the fixtures'
``canonical_order`` describes for theirs.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from ov2seg_jax.parity.report import format_table
from ov2seg_jax.parity.tracking_fixture import check_post_processing
from ov2seg_jax.tracking.readout import (
    choose_instances,
    instance_inference,
    iter_masks_to_output,
    mask_score,
    mask_score_sums,
    mask_scores_from_sums,
    masks_to_output,
)
from ov2seg_jax.tracking.tracker import track_video

POST_PROCESSING_CASES = [
    ("ov2seg_small", ""),
    ("ov2seg_small", "long_"),
    ("ov2seg_r50", ""),
    ("ov2seg_swinb", ""),
]


def _load(path: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        pytest.skip(f"fixture file {path} not present")
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize(("model", "prefix"), POST_PROCESSING_CASES)
def test_post_processing_parity(fixtures_root, model, prefix):
    folder = os.path.join(fixtures_root, model)
    window = _load(os.path.join(folder, f"{prefix}window_outputs.npz"))
    rows = check_post_processing(window, folder, prefix)
    table = format_table(rows, f"{model}/{prefix}: stored window outputs -> tracker -> read-out")
    print(table)
    assert rows and all(r.passed for r in rows), "\n" + table
    names = " ".join(r.name for r in rows)
    for expected in ("match_indices", "scores", "masks_final", "(query, label) set"):
        assert expected in names, f"no {expected} row:\n{table}"


def test_fixture_order_is_descending_score(fixtures_root):
    """Our listing order is the fixtures' canonical order (descending final score)."""
    folder = os.path.join(fixtures_root, "ov2seg_small")
    window = _load(os.path.join(folder, "window_outputs.npz"))
    inst = _load(os.path.join(folder, "instances.npz"))
    t = track_video(
        window["pred_embds"],
        window["pred_logits"],
        window["pred_object_logits"],
        window["pred_masks"],
    )
    ours = instance_inference(
        t.pred_logits,
        t.pred_obj_logits,
        t.pred_masks,
        t.pred_per_frame_logits,
        t.pred_per_frame_obj_logits,
        inst["scores"].shape[0],
    )
    assert np.all(np.diff(ours.scores) <= 0)
    canon = inst["canonical_order"]
    assert np.array_equal(ours.query_index, inst["query_index"][canon])
    assert np.array_equal(ours.labels, inst["labels"][canon])


# ---------------------------------------------------------------------------------------------
# Hand-made read-out
# ---------------------------------------------------------------------------------------------


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def test_instance_inference_by_hand():
    # Q = 2 queries, C = 2 classes (+ background), T = 2 frames of 1 x 2 pixels.
    cls = np.array([[2.0, -1.0, 0.0], [0.5, 1.0, 0.0]], np.float32)
    obj = np.array([[1.0, -1.0], [0.0, 0.0]], np.float32)
    per_frame_cls = np.stack([cls, cls], axis=1).copy()
    per_frame_cls[0, 1, 0] = -20.0  # query 0, frame 1: class 0 collapses -> frame ignored
    per_frame_obj = np.stack([obj, obj], axis=1)
    masks = np.array(
        [[[[3.0, -2.0]], [[1.0, 4.0]]], [[[-1.0, 2.0]], [[0.5, -0.5]]]], np.float32
    )  # (Q, T, 1, 2)

    r = instance_inference(cls, obj, masks, per_frame_cls, per_frame_obj, top_k=3)

    p_obj = np.array([_sigmoid(2.0), 0.5])  # softmax of two logits = sigmoid of their difference
    video = np.sqrt(_sigmoid(cls[:, :2]) * p_obj[:, None])  # (Q, C)
    flat = video.reshape(-1)
    chosen = set(np.argsort(-flat)[:3].tolist())
    assert set(r.topk_flat_index.tolist()) == chosen
    np.testing.assert_array_equal(r.query_index, r.topk_flat_index // 2)
    np.testing.assert_array_equal(r.labels, r.topk_flat_index % 2)

    i = int(np.flatnonzero(r.topk_flat_index == 0)[0])  # query 0, class 0
    assert r.frame_ignored[i].tolist() == [False, True]
    np.testing.assert_array_equal(r.pred_masks[i, 1], -1.0)
    np.testing.assert_array_equal(r.pred_masks[i, 0], masks[0, 0])
    # Mask score over frame 0's single positive pixel only (frame 1 was blanked to -1).
    np.testing.assert_allclose(r.scores[i], flat[0] * _sigmoid(3.0) / (1 + 1e-6), rtol=1e-6)
    # Unchanged input, and ours are listed by descending final score.
    assert masks[0, 1, 0, 0] == 1.0
    assert np.all(np.diff(r.scores) <= 0)


def test_ties_are_ordered_by_flat_index():
    cls = np.zeros((3, 3), np.float32)  # every pair scores the same
    obj = np.zeros((3, 2), np.float32)
    masks = np.ones((3, 1, 2, 2), np.float32)
    r = instance_inference(cls, obj, masks, cls[:, None], obj[:, None], top_k=4)
    np.testing.assert_array_equal(r.topk_flat_index, [0, 1, 2, 3])


def test_mask_score_without_positive_pixels_is_zero():
    m = -np.ones((2, 3, 2, 2), np.float32)
    m[1, 0, 0, 0] = 2.0
    np.testing.assert_allclose(mask_score(m), [0.0, _sigmoid(2.0) / (1 + 1e-6)], rtol=1e-6)


def test_readout_shape_errors():
    q, t, c1 = 3, 2, 4
    cls = np.zeros((q, c1), np.float32)
    obj = np.zeros((q, 2), np.float32)
    masks = np.zeros((q, t, 2, 2), np.float32)
    pf_cls = np.zeros((q, t, c1), np.float32)
    pf_obj = np.zeros((q, t, 2), np.float32)
    with pytest.raises(ValueError, match=r"mask_object_cls must be \(Q, 2\) = \(3, 2\).*\(3, 3\)"):
        instance_inference(cls, np.zeros((3, 3)), masks, pf_cls, pf_obj, 2)
    with pytest.raises(ValueError, match=r"mask_per_frame_cls must be \(Q, T, C\+1\)"):
        instance_inference(cls, obj, masks, pf_cls[:, :1], pf_obj, 2)
    with pytest.raises(ValueError, match=r"mask_pred must be \(Q, T, h, w\)"):
        instance_inference(cls, obj, masks[:, 0], pf_cls, pf_obj, 2)
    with pytest.raises(ValueError, match=r"top_k must be at least 1, got 0"):
        instance_inference(cls, obj, masks, pf_cls, pf_obj, 0)


def test_top_k_beyond_the_pairs_keeps_every_pair():
    """``top_k`` is an upper bound: Q * C = 6 pairs with top_k = 10 gives all 6, in the order
    (and with the scores) that top_k = 6 gives."""
    rng = np.random.default_rng(3)
    cls = rng.standard_normal((3, 3)).astype(np.float32)
    obj = rng.standard_normal((3, 2)).astype(np.float32)
    masks = rng.standard_normal((3, 2, 2, 2)).astype(np.float32)
    pf_cls = rng.standard_normal((3, 2, 3)).astype(np.float32)
    pf_obj = rng.standard_normal((3, 2, 2)).astype(np.float32)
    exact = instance_inference(cls, obj, masks, pf_cls, pf_obj, top_k=6)
    over = instance_inference(cls, obj, masks, pf_cls, pf_obj, top_k=10)
    assert sorted(over.topk_flat_index.tolist()) == list(range(6))
    np.testing.assert_array_equal(over.topk_flat_index, exact.topk_flat_index)
    np.testing.assert_array_equal(over.scores, exact.scores)
    assert len(choose_instances(cls, obj, top_k=10).flat_index) == 6


def test_mask_score_sums_add_up_over_windows():
    """Scoring frame windows one by one (as streaming does) equals scoring the whole video."""
    rng = np.random.default_rng(4)
    m = rng.standard_normal((5, 3, 4, 6)).astype(np.float32)  # (T, K, h, w)
    num = np.zeros(3)
    den = np.zeros(3)
    for start in (0, 2, 4):
        n, d = mask_score_sums(m[start : start + 2], axis=(0, 2, 3))
        num, den = num + n, den + d
    whole = mask_score(m.transpose(1, 0, 2, 3))
    np.testing.assert_allclose(mask_scores_from_sums(num, den), whole, rtol=1e-6)
    s = 1.0 / (1.0 + np.exp(-m.astype(np.float64)))
    expected = (s * (m > 0)).sum(axis=(0, 2, 3)) / ((m > 0).sum(axis=(0, 2, 3)) + 1e-6)
    np.testing.assert_allclose(whole, expected, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Final resize
# ---------------------------------------------------------------------------------------------


def test_masks_to_output_matches_torch():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    logits = (3 * rng.standard_normal((3, 2, 12, 20))).astype(np.float32)
    padded, image, output = (48, 80), (45, 70), (67, 101)
    t = torch.from_numpy(logits)
    mid = F.interpolate(t, size=padded, mode="bilinear", align_corners=False)
    mid = mid[:, :, : image[0], : image[1]]
    ref_logits = F.interpolate(mid, size=output, mode="bilinear", align_corners=False).numpy()
    ref = ref_logits > 0

    ours = masks_to_output(logits, padded, image, output)
    assert ours.shape == (3, 2, *output) and ours.dtype == bool
    differ = ours != ref
    assert np.all(np.abs(ref_logits[differ]) < 1e-4), "only threshold-adjacent pixels may differ"
    assert differ.sum() <= 1e-4 * ref.size

    # Chunking (a tiny memory budget: one frame per chunk) changes nothing.
    chunked = masks_to_output(logits, padded, image, output, budget_bytes=1)
    np.testing.assert_array_equal(chunked, ours)
    starts = [s for s, _ in iter_masks_to_output(logits, padded, image, output, budget_bytes=1)]
    assert starts == list(range(6))


def test_masks_to_output_errors():
    x = np.zeros((2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="image_size .* must fit inside padded_size"):
        masks_to_output(x, (16, 16), (20, 16), (32, 32))
    with pytest.raises(ValueError, match="output_size must be two positive integers"):
        masks_to_output(x, (16, 16), (16, 16), (0, 32))
