"""Overlay rendering (pixel values) and mp4 / gif writing (files read back)."""

from __future__ import annotations

import os

import imageio.v3 as iio
import numpy as np
import pytest

from ov2seg_jax.inference.overlay import (
    overlay_frames,
    place_labels,
    render_frame,
    track_colour,
    upscale_factor,
    write_overlay,
)
from ov2seg_jax.inference.predictor import VideoPrediction


def test_render_frame_blends_masks_and_writes_captions():
    frame = np.full((60, 80, 3), 100, np.uint8)
    masks = np.zeros((2, 60, 80), bool)
    masks[0, 20:30, 5:15] = True
    masks[1, 25:55, 40:75] = True
    out = render_frame(frame, masks, [0, 1], ["0 cat 0.90", "1 dog 0.50"], alpha=0.5)
    assert out.shape == frame.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(frame, 100)  # input untouched
    # Inside a mask, away from the caption: the 50/50 blend of grey and the track colour.
    want = np.rint(0.5 * 100 + 0.5 * np.asarray(track_colour(1), float))
    np.testing.assert_array_equal(out[52, 70], want)
    # Outside every mask and caption: unchanged.
    np.testing.assert_array_equal(out[2, 78], [100, 100, 100])
    # The caption box starts at the mask's top-left corner, in the track's colour or text colour.
    box = out[25:28, 40:44].reshape(-1, 3)
    assert any((px == track_colour(1)).all() or (px == 0).all() for px in box)
    assert track_colour(0) != track_colour(1)
    with pytest.raises(ValueError, match="do not fit"):
        render_frame(frame, masks[:, :10], [0, 1], ["a", "b"])


def test_captions_stay_inside_the_frame():
    """A mask in the bottom-right corner: its caption moves left and up to stay readable."""
    frame = np.full((60, 160, 3), 100, np.uint8)
    masks = np.zeros((1, 60, 160), bool)
    masks[0, 52:60, 150:160] = True
    out = render_frame(frame, masks, [4], ["4 skateboard 0.87"], alpha=0.0)
    colour = np.all(out == track_colour(4), axis=-1)
    ys, xs = np.nonzero(colour)
    assert xs.size and xs.min() < 150 - 40 and ys.min() < 52  # left of and above the mask
    assert xs.max() <= 159 and ys.max() <= 59


def _prediction(t=6, h=72, w=100) -> VideoPrediction:
    masks = np.zeros((2, t, h, w), bool)
    for i in range(t):
        masks[0, i, 8:40, 2 + 5 * i : 30 + 5 * i] = True
    masks[1, :, 44:70, 60:96] = True
    return VideoPrediction(np.array([0.9, 0.2]), np.array([1, 0]), masks, np.array([3, 5]))


@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_write_overlay_is_playable(tmp_path, fmt):
    pred = _prediction()
    frames = [np.full((72, 100, 3), 60, np.uint8)] * 6
    path = write_overlay(iter(frames), pred, ["cat", "dog"], str(tmp_path / f"o.{fmt}"), fps=5)
    assert os.path.isfile(path) and not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]
    back = np.stack(list(iio.imiter(path, plugin="pyav")))
    k = upscale_factor(72, 100)  # small frames are enlarged so that captions stay readable
    assert k == 6 and back.shape[0] == 6 and back.shape[1:3] == (72 * k, 100 * k)
    # The video shows the rendered frames (up to the codec's loss).
    want = np.stack(list(overlay_frames(iter(frames), pred, ["cat", "dog"])))
    assert np.abs(back.astype(float) - want).mean() < 6
    assert np.abs(back.astype(float) - 60).mean() > 10  # and they are not blank


def test_write_overlay_threshold_and_bad_format(tmp_path):
    pred = _prediction()
    frames = [np.full((72, 100, 3), 60, np.uint8)] * 6
    path = write_overlay(
        iter(frames), pred, ["cat", "dog"], str(tmp_path / "o.mp4"), score_threshold=0.5
    )
    back = np.stack(list(iio.imiter(path, plugin="pyav")))
    # Instance 1 (score 0.2) is not drawn: its region keeps the background.
    k = upscale_factor(72, 100)
    assert np.abs(back[:, 66 * k + k // 2, 90 * k + k // 2].astype(float) - 60).max() < 12
    with pytest.raises(ValueError, match="format must be one of"):
        write_overlay(iter(frames), pred, ["cat", "dog"], str(tmp_path / "o.avi"))
    with pytest.raises(ValueError, match="no frames"):
        write_overlay(iter(()), pred, ["cat", "dog"], str(tmp_path / "none.mp4"))
    assert not os.path.exists(tmp_path / "none.mp4")


def test_place_labels_values():
    """Inside the frame, the first label at its preferred corner, the next one moved off it."""
    frame = (60, 100)
    corner = (90, 50, 99, 59)  # a mask touching the right and bottom edges
    assert place_labels([corner], [(30, 10)], frame) == [(70, 50)]
    # A second label on the same box: the corner is taken, so one label height up.
    assert place_labels([corner, corner], [(30, 10), (30, 10)], frame) == [(70, 50), (70, 40)]
    # Two boxes with the same top-left corner: the second goes right-aligned in its box.
    boxes = [(10, 10, 80, 40), (10, 10, 80, 30)]
    assert place_labels(boxes, [(30, 10), (30, 10)], frame) == [(10, 10), (51, 10)]
    # A label wider than the frame starts at its left edge.
    assert place_labels([(5, 5, 9, 9)], [(120, 10)], frame) == [(0, 5)]


def _label_patches(out: np.ndarray, ids) -> dict[int, np.ndarray]:
    """Each track's label as drawn: the crop of the bounding box of its colour's pixels."""
    patches = {}
    for tid in ids:
        ys, xs = np.nonzero(np.all(out == track_colour(tid), axis=-1))
        patches[tid] = out[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return patches


def _reference_label(caption: str, tid: int) -> np.ndarray:
    """The label drawn far from every edge and every other label."""
    frame = np.full((80, 240, 3), 100, np.uint8)
    mask = np.zeros((1, 80, 240), bool)
    mask[0, 30:40, 60:70] = True
    return _label_patches(render_frame(frame, mask, [tid], [caption], alpha=0.0), [tid])[tid]


def test_a_label_at_the_right_and_bottom_edges_is_drawn_whole():
    frame = np.full((60, 160, 3), 100, np.uint8)
    masks = np.zeros((1, 60, 160), bool)
    masks[0, 50:60, 148:160] = True  # touches the right and the bottom edge
    out = render_frame(frame, masks, [2], ["2 skateboard 0.87"], alpha=0.0)
    want = _reference_label("2 skateboard 0.87", 2)
    got = _label_patches(out, [2])[2]
    np.testing.assert_array_equal(got, want)  # every pixel of the label, text included
    assert (want.astype(int).sum(-1) < 200).sum() > 20  # the text (anti-aliased ink) is in it
    ys, xs = np.nonzero(np.all(out == track_colour(2), axis=-1))
    assert xs.max() == 159 and ys.max() == 59  # pushed against the corner, not cut by it


def test_labels_do_not_hide_each_other():
    frame = np.full((90, 200, 3), 100, np.uint8)
    masks = np.zeros((3, 90, 200), bool)
    masks[0, 10:50, 10:150] = True  # three tracks whose masks share their top-left corner
    masks[1, 10:40, 10:120] = True
    masks[2, 10:30, 10:100] = True
    captions = ["0 person 0.30", "1 dog 0.60", "2 skateboard 0.90"]
    out = render_frame(frame, masks, [0, 1, 2], captions, alpha=0.0)
    patches = _label_patches(out, [0, 1, 2])
    for tid, caption in enumerate(captions):
        np.testing.assert_array_equal(patches[tid], _reference_label(caption, tid), err_msg=caption)
    # The most confident track keeps the mask's corner.
    ys, xs = np.nonzero(np.all(out == track_colour(2), axis=-1))
    assert (xs.min(), ys.min()) == (10, 10)
