"""Whole videos for evaluation, decoded in parallel and read ahead of the model.

Each video's frames are decoded and resized (short side to the test min size, 480 for LV-VIS,
long side capped, as :func:`ov2seg_jax.inference.frames.read_frames`) by a pool of threads, while
a background thread keeps up to ``prefetch`` whole videos ready, so the model never waits for
JPEG decoding. The original frame size is returned with each video for the output masks.
PIL releases the GIL while decoding and resizing, so threads give real parallelism.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from ov2seg_jax.inference.frames import read_image, resize_frame, resized_shape

V = TypeVar("V")
_DONE = object()


def read_frames_parallel(
    paths: Sequence[str],
    min_size: int | None,
    max_size: int,
    pool: ThreadPoolExecutor,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Frames (T, H', W', 3) uint8 resized as the test mapper does, and the original (H, W).

    Same result as ``read_frames(paths, min_size, max_size)``; all frames must share one size
    (an error names the first frame that does not).
    """
    paths = list(paths)
    if not paths:
        raise ValueError("no frames to read")
    images = list(pool.map(read_image, paths))
    original = images[0].shape[:2]
    for p, img in zip(paths, images, strict=True):
        if img.shape[:2] != original:
            raise ValueError(
                f"{p} is {img.shape[1]}x{img.shape[0]}, but the first frame ({paths[0]}) is "
                f"{original[1]}x{original[0]}: all frames must match"
            )
    size = resized_shape(*original, min_size, max_size) if min_size else original
    frames = list(pool.map(lambda im: resize_frame(im, size), images))
    return np.stack(frames), (int(original[0]), int(original[1]))


def prefetch_videos(
    videos: Iterable[V],
    min_size: int | None,
    max_size: int = 1333,
    *,
    frame_paths=lambda v: v.frame_paths,
    workers: int = 4,
    prefetch: int = 2,
) -> Iterator[tuple[V, np.ndarray, tuple[int, int]]]:
    """``(video, frames, original_size)`` for each video in order, read ahead in the background.

    ``videos`` are e.g. :class:`~ov2seg_jax.data.video_json.VideoRecord`; ``frame_paths(video)``
    gives the frame files. An error reading a video is raised when that video is reached.
    """
    if prefetch < 1 or workers < 1:
        raise ValueError(f"prefetch and workers must be >= 1, got {prefetch}, {workers}")
    ready: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def produce(pool: ThreadPoolExecutor) -> None:
        try:
            for video in videos:
                if stop.is_set():
                    return
                try:
                    item = (
                        video,
                        *read_frames_parallel(frame_paths(video), min_size, max_size, pool),
                    )
                except Exception as e:  # handed to the consumer, raised at this video
                    item = e
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if isinstance(item, Exception):
                    return
        finally:
            if not stop.is_set():
                ready.put(_DONE)

    with ThreadPoolExecutor(workers) as pool:
        thread = threading.Thread(target=produce, args=(pool,), daemon=True)
        thread.start()
        try:
            while True:
                item = ready.get()
                if item is _DONE:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    ready.get(timeout=0.1)
                except queue.Empty:
                    pass
