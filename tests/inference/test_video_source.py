"""Lazy frame sources: video files of several containers, frame folders, and bad input."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from ov2seg_jax.inference.video_source import network_frames, network_size, open_video


def _moving_square(t: int = 7, h: int = 48, w: int = 64) -> np.ndarray:
    frames = np.full((t, h, w, 3), 40, np.uint8)
    for i in range(t):
        frames[i, 10:30, 4 + 4 * i : 24 + 4 * i] = (230, 60, 30)
    return frames


@pytest.mark.parametrize(
    ("ext", "codec"), [("mp4", "libx264"), ("avi", "mpeg4"), ("webm", "libvpx-vp9")]
)
def test_video_files_decode_lazily(tmp_path, ext, codec):
    frames = _moving_square()
    path = str(tmp_path / f"clip.{ext}")
    iio.imwrite(path, frames, plugin="pyav", codec=codec, fps=12)
    source = open_video(path)
    assert source.kind == "video" and source.size == (48, 64)
    assert source.fps == pytest.approx(12.0)
    assert source.num_frames in (7, None)  # webm does not store the count
    decoded = np.stack(list(source.frames()))
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    # Lossy codecs: the square is still where it was drawn.
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 12
    # A second pass reads the same frames again.
    np.testing.assert_array_equal(np.stack(list(source.frames())), decoded)
    resized = list(network_frames(source, 96, 1333))
    assert network_size(source, 96, 1333) == (96, 128) == resized[0].shape[:2]


def test_frame_folder(tmp_path):
    frames = _moving_square(3)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"{i:03d}.png")
    source = open_video(str(tmp_path))
    assert source.kind == "frames" and source.num_frames == 3 and source.fps is None
    np.testing.assert_array_equal(np.stack(list(source.frames())), frames)


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="input not found: .*missing.mp4"):
        open_video(str(tmp_path / "missing.mp4"))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.mp4: the file is empty"):
        open_video(str(empty))
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 50)
    with pytest.raises(ValueError, match="cannot decode video .*garbage.mp4"):
        open_video(str(garbage))
    with pytest.raises(ValueError, match="holds no images"):
        open_video(str(tmp_path))  # a folder of non-images
    with pytest.raises(ValueError, match="no input"):
        open_video("")
    # A folder whose frames change size part-way fails while streaming, naming the frame.
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "0.png")
    Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(folder / "1.png")
    with pytest.raises(ValueError, match="frame 1 is 8x9"):
        list(open_video(str(folder)).frames())
