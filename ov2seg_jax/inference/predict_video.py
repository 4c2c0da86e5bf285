"""Predict one user video into a folder: results JSON, categories, a table of tracks, an overlay.

:func:`predict_to_folder` is what ``--mode predict`` runs once the model and vocabulary are
loaded. The input is checked before the network runs and every file is written only after the
whole video has been predicted (each to a temporary name, then renamed), so bad input leaves
nothing behind; an output folder created for a run that then fails is removed again. Outputs in ``out_dir``:

* ``results.json``: LV-VIS / YouTube-VIS results, ``[{video_id, category_id, score,
  segmentations}]`` with one compressed RLE per frame at the video's own size (null where the
  instance's mask is empty); ``category_id`` is the vocabulary row + 1.
* ``categories.json``: ``[{id, name}]`` for those ids.
* ``tracks.txt``: the table also printed (track id, class, score, first/last frame).
* ``overlay.mp4`` or ``overlay.gif``: the frames with masks, track ids, names and scores of the
  instances scoring at least ``score_threshold``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Sequence

from ov2seg_jax.atomic_file import atomic_write
from ov2seg_jax.inference.overlay import OVERLAY_FORMATS, write_overlay
from ov2seg_jax.inference.predictor import VideoPredictor
from ov2seg_jax.inference.results import format_tracks, streamed_results, write_results
from ov2seg_jax.inference.streaming import (
    StreamedPrediction,
    StreamingPredictor,
)
from ov2seg_jax.inference.video_source import (
    DEFAULT_FOLDER_FPS,
    VideoSource,
    network_frames,
    network_size,
)


@dataclasses.dataclass(frozen=True)
class PredictOutputs:
    """What :func:`predict_to_folder` wrote and computed."""

    prediction: StreamedPrediction
    results: str
    categories: str
    tracks: str
    overlay: str | None
    table: str
    # process age (s) when the first (and second) window was predicted
    window_ages_s: tuple[float, ...] = ()

    def window_s(self) -> float | None:
        """Seconds the second window took; None for a one-window video."""
        if len(self.window_ages_s) < 2:
            return None
        return self.window_ages_s[1] - self.window_ages_s[0]

    def startup_s(self) -> float | None:
        """Seconds from process start until the first window's computation began (its ready
        time less the time the second window took); None for a one-window video."""
        window = self.window_s()
        return None if window is None else self.window_ages_s[0] - window


def _write_text(path: str, text: str) -> str:
    with atomic_write(path) as f:
        f.write(text)
    return path


def predict_to_folder(
    predictor: VideoPredictor,
    source: VideoSource,
    names: Sequence[str],
    out_dir: str,
    *,
    min_size: int | None,
    max_size: int,
    overlay: str,
    score_threshold: float,
    fps: float,
    cache_bytes: int,
    video_id: int = 0,
    progress: bool = True,
) -> PredictOutputs:
    """Predict ``source`` with ``predictor`` (whose classifier rows are ``names``) into ``out_dir``.

    ``min_size``/``max_size``: the test resize (short side, long-side cap; None keeps the stored
    size); ``overlay``: ``"mp4"``, ``"gif"`` or ``"none"``; ``score_threshold``: the lowest score
    drawn in the overlay and listed in the table; ``fps``: the overlay's frame rate (0: the video's
    own, or 10 for a frame folder); ``cache_bytes``: see
    :class:`~ov2seg_jax.inference.streaming.StreamingPredictor`.
    """
    if overlay not in (*OVERLAY_FORMATS, "none"):
        raise ValueError(
            f"predict.overlay must be one of {(*OVERLAY_FORMATS, 'none')}, got {overlay!r}"
        )
    num_rows = int(predictor.classifier.shape[0])
    if len(names) != num_rows:
        raise ValueError(f"{len(names)} class names for a classifier of {num_rows} rows")
    size = network_size(source, min_size, max_size)
    streamer = StreamingPredictor(predictor, cache_bytes=cache_bytes)
    pred = streamer.predict(
        lambda: network_frames(source, min_size, max_size),
        size,
        output_size=source.size,
        num_frames=source.num_frames,
        progress=progress,
    )
    table = format_tracks(pred, names, min_score=score_threshold)

    created = not os.path.exists(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    try:  # the overlay first: it is the one that can still fail (ffmpeg), then the small files
        overlay_path = None
        if overlay != "none":
            overlay_path = write_overlay(
                source.frames(),
                pred,
                names,
                os.path.join(out_dir, f"overlay.{overlay}"),
                fps=fps or source.fps or DEFAULT_FOLDER_FPS,
                score_threshold=score_threshold,
            )
        results = write_results(
            os.path.join(out_dir, "results.json"), streamed_results(video_id, pred)
        )
        categories = _write_text(
            os.path.join(out_dir, "categories.json"),
            json.dumps([{"id": i + 1, "name": n} for i, n in enumerate(names)], indent=1),
        )
        tracks = _write_text(os.path.join(out_dir, "tracks.txt"), table + "\n")
    except BaseException:
        if created:  # a folder made for this run holds nothing half-written afterwards
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return PredictOutputs(
        pred, results, categories, tracks, overlay_path, table, tuple(streamer.window_ages_s)
    )
