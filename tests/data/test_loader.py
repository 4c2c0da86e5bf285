"""Loading one example (ov2seg_jax.data.loader): clip frames, decoding, bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ov2seg_jax.data import loader
from ov2seg_jax.data.records import InstanceTrack, ProblemTally, TrainRecord


def test_clip_frames_are_near_a_reference_frame_and_sorted():
    rng = np.random.default_rng(0)
    for _ in range(200):
        idx = loader.sample_clip_frames(30, 3, 2, rng)
        assert idx == sorted(idx) and len(idx) == 3
        # The reference is one of them and the others lie within 2 frames of it (not equal).
        assert any(
            all(0 < abs(i - r) <= 2 for k, i in enumerate(idx) if k != q) for q, r in enumerate(idx)
        )
        assert max(idx) - min(idx) <= 4
    assert loader.sample_clip_frames(1, 2, 20, rng) == [0, 0]
    assert len(loader.sample_clip_frames(5, 1, 20, rng)) == 1


def test_load_example_decodes_and_counts_bad_segmentations(tmp_path):
    img = np.zeros((4, 6, 3), np.uint8)
    paths = []
    for t in range(2):
        p = str(tmp_path / f"{t}.png")
        Image.fromarray(img).save(p)
        paths.append(p)
    square = [[1, 1, 3, 1, 3, 3, 1, 3]]
    bad_rle = {"size": [5, 6], "counts": "x"}
    rec = TrainRecord(
        7,
        tuple(paths),
        4,
        6,
        (InstanceTrack(2, (square, None)), InstanceTrack(5, (bad_rle, square))),
    )
    tally = ProblemTally()
    frames, masks, labels = loader.load_example(rec, [0, 1], tally)
    assert frames.shape == (2, 4, 6, 3) and masks.shape == (2, 2, 4, 6)
    np.testing.assert_array_equal(labels, [2, 5])
    expected = np.zeros((4, 6), np.uint8)
    expected[1:3, 1:3] = 1
    np.testing.assert_array_equal(masks[0, 0], expected)
    assert not masks[1, 0].any() and not masks[0, 1].any()
    np.testing.assert_array_equal(masks[1, 1], expected)
    assert tally.as_dict() == {"bad_segmentation": 1}


def test_frames_of_another_size_than_annotated_are_named(tmp_path):
    p = str(tmp_path / "a.png")
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(p)
    with pytest.raises(loader.ExampleError, match="a.png is 6x4 but annotated as 8x4") as e:
        loader.read_frame(p, 4, 8)
    assert e.value.kind == "size_mismatch"
