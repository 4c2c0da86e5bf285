"""Lazy frame sources for prediction: a video file (mp4, avi, webm, mov, mkv, gif ...) or a folder.

:func:`open_video` checks the input up front (it exists, decodes, holds at least one frame) and
returns a :class:`VideoSource`, whose :meth:`VideoSource.frames` yields the frames one at a time
at their stored size, decoding lazily, so a long video never sits in memory. Each call starts a
fresh pass over the input (the streaming predictor and the overlay writer read it more than once).
Video files are decoded with PyAV (FFmpeg); frame folders with PIL, sorted by name.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

import numpy as np

from ov2seg_jax.inference.frames import list_frames, read_image, resize_frame, resized_shape

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".gif")
DEFAULT_FOLDER_FPS = 10.0


@dataclasses.dataclass(frozen=True)
class VideoSource:
    """A checked video input.

    ``path``: the file or folder; ``kind``: ``"video"`` or ``"frames"``; ``size`` (H, W) of
    every frame; ``num_frames``: the frame count when known up front (folders, most containers),
    else None; ``fps``: frames per second of a video file (None for folders);
    ``frame_paths``: the image files of a folder (None for a video file).
    """

    path: str
    kind: str
    size: tuple[int, int]
    num_frames: int | None
    fps: float | None
    frame_paths: tuple[str, ...] | None = None

    def frames(self) -> Iterator[np.ndarray]:
        """Yield every frame as (H, W, 3) uint8 RGB, decoded lazily; errors name the file."""
        raw = self._folder_frames() if self.kind == "frames" else _decode(self.path)
        for index, frame in enumerate(raw):
            if frame.shape[:2] != self.size:
                raise ValueError(
                    f"{self.path}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, but the "
                    f"first frame is {self.size[1]}x{self.size[0]}: all frames must match"
                )
            yield frame

    def _folder_frames(self) -> Iterator[np.ndarray]:
        for p in self.frame_paths or ():
            yield read_image(p)


def _decode_error(path: str, e: Exception) -> ValueError:
    return ValueError(f"cannot decode video {path}: {type(e).__name__}: {e}")


def _decode(path: str) -> Iterator[np.ndarray]:
    """Frames of the first video stream of ``path`` as RGB uint8, through PyAV (FFmpeg).

    PyAV is used directly rather than through imageio's plugin, which runs a full garbage
    collection on every close (slow in a process holding a large heap). Decoding errors are
    ValueErrors naming ``path``.
    """
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise ValueError(f"cannot decode video {path}: the file holds no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
    except ValueError as e:
        if str(e).startswith("cannot decode video"):
            raise
        raise _decode_error(path, e) from e
    except Exception as e:  # av.error.* (FFmpeg errors), OSError
        raise _decode_error(path, e) from e


def _probe(path: str) -> tuple[int | None, float | None]:
    """(frame count or None, frames per second or None) from the container's metadata."""
    import av

    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            count = int(stream.frames) or None  # 0: the container does not store it
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else None
    except Exception:  # metadata is optional; decoding decides whether the file is usable
        return None, None
    return count, fps


def open_video(path: str) -> VideoSource:
    """Check ``path`` (a video file or a folder of frames) and return its :class:`VideoSource`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: an unreadable or empty video, a folder without images, an unreadable image.
    """
    if not path:
        raise ValueError("no input: give a video file or a folder of frames")
    path = os.path.expanduser(path)
    if os.path.isdir(path):
        paths = tuple(list_frames(path))
        first = read_image(paths[0])
        return VideoSource(path, "frames", first.shape[:2], len(paths), None, paths)
    if not os.path.exists(path):
        raise FileNotFoundError(f"input not found: {path} (a video file or a folder of frames)")
    if os.path.getsize(path) == 0:
        raise ValueError(f"cannot read video {path}: the file is empty")
    try:
        first = next(_decode(path), None)
    except ValueError as e:
        raise ValueError(
            f"{e} (supported: a video file such as {', '.join(VIDEO_EXTENSIONS)}, or a "
            "folder of frames)"
        ) from e
    if first is None:
        raise ValueError(f"video {path} holds no frames")
    count, fps = _probe(path)
    return VideoSource(path, "video", first.shape[:2], count, fps)


def network_frames(
    source: VideoSource, min_size: int | None, max_size: int
) -> Iterator[np.ndarray]:
    """``source``'s frames resized as the test mapper does (short side ``min_size``; None: as
    stored), one at a time."""
    size = resized_shape(*source.size, min_size, max_size) if min_size else source.size
    for frame in source.frames():
        yield resize_frame(frame, size)


def network_size(source: VideoSource, min_size: int | None, max_size: int) -> tuple[int, int]:
    """The (H, W) the network sees for ``source``."""
    return resized_shape(*source.size, min_size, max_size) if min_size else source.size
