"""Parallel, read-ahead decoding of whole evaluation videos (ov2seg_jax.data.eval_frames)."""

from __future__ import annotations

import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ov2seg_jax.data import registry
from ov2seg_jax.data.eval_frames import prefetch_videos, read_frames_parallel
from ov2seg_jax.data.video_json import load_video_dataset
from ov2seg_jax.inference.frames import read_frames


def _videos(root: str):
    e = registry.resolve("lvvis_val", root)
    return load_video_dataset(e.json, e.image_root).videos


def test_same_frames_as_the_sequential_reader_in_order(layouts_root):
    videos = _videos(layouts_root)
    got = list(prefetch_videos(videos, 32, 1333, workers=3, prefetch=1))
    assert [v.video_id for v, _, _ in got] == [v.video_id for v in videos]
    for video, frames, original in got:
        ref, ref_original = read_frames(video.frame_paths, 32, 1333)
        # 48x64 frames: short side 48 -> 32, long side 64 -> 42.67 -> 43; original kept.
        assert frames.shape == (4, 32, 43, 3) and original == (48, 64) == ref_original
        np.testing.assert_array_equal(frames, ref)
    with ThreadPoolExecutor(2) as pool:
        frames, original = read_frames_parallel(videos[0].frame_paths, None, 1333, pool)
    assert frames.shape == (4, 48, 64, 3)


def test_an_unreadable_video_raises_when_reached(layouts_root, tmp_path):
    e = registry.resolve("lvvis_val", layouts_root)
    root = str(tmp_path / "LVVIS")
    shutil.copytree(os.path.dirname(e.json), os.path.join(root, "val"))
    copy = registry.resolve("lvvis_format", root, "val")
    videos = load_video_dataset(copy.json, copy.image_root).videos
    bad = videos[1].frame_paths[2]
    with open(bad, "wb") as f:
        f.write(b"not an image")
    it = prefetch_videos(videos, 32, 1333, workers=2, prefetch=2)
    assert next(it)[0].video_id == videos[0].video_id
    with pytest.raises(ValueError, match="cannot read image .*00002.jpg"):
        next(it)
    # Stopping early leaves no thread behind.
    before = threading.active_count()
    it = prefetch_videos(videos[:1] * 5, 32, 1333)
    next(it)
    assert threading.active_count() > before
    it.close()
    assert threading.active_count() == before
