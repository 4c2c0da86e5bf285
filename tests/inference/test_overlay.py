"""Overlay rendering (pixel values) and mp4 / gif writing (files read back)."""

from __future__ import annotations

import os

import imageio.v3 as iio
import numpy as np
import pytest

from ov2seg_jax.inference.overlay import (
    overlay_frames,
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
