"""Prediction over a whole dataset split, resumable video by video.

Each finished video's results are appended as one JSON line to ``predictions.jsonl``; a rerun
skips the videos already there (a line cut short by a crash is dropped and its video redone),
then writes the concatenated ``results.json``. Frames are decoded by a thread pool, the next
videos read ahead while the network runs.
"""

from __future__ import annotations

import json
import os

import ml_collections
from tqdm import tqdm

from ov2seg_jax.data.eval_frames import prefetch_videos
from ov2seg_jax.data.video_json import VideoDataset
from ov2seg_jax.inference.predictor import VideoPredictor
from ov2seg_jax.inference.results import to_results, write_results

CACHE = "predictions.jsonl"


def _load_cache(path: str) -> dict[int, list[dict]]:
    done: dict[int, list[dict]] = {}
    if not os.path.exists(path):
        return done
    with open(path) as f:
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # the last line of an interrupted run
                continue
            done[int(entry["video_id"])] = entry["results"]
    return done


def predict_dataset(
    predictor: VideoPredictor,
    dataset: VideoDataset,
    out_dir: str,
    inference: ml_collections.ConfigDict,
    max_videos: int = 0,
) -> str:
    """Predict every video (or the first ``max_videos``) and write ``out_dir/results.json``."""
    os.makedirs(out_dir, exist_ok=True)
    cache_path = os.path.join(out_dir, CACHE)
    done = _load_cache(cache_path)
    videos = dataset.videos[:max_videos] if max_videos else dataset.videos
    todo = [v for v in videos if v.video_id not in done]
    with open(cache_path, "a") as cache:
        videos_with_frames = prefetch_videos(todo, inference.min_size_test, inference.max_size_test)
        for video, frames, _ in tqdm(
            videos_with_frames, total=len(todo), desc="videos", unit="video", disable=not todo
        ):
            pred = predictor.predict(frames, output_size=(video.height, video.width))
            results = to_results(video.video_id, pred, dataset.category_ids)
            cache.write(json.dumps({"video_id": video.video_id, "results": results}) + "\n")
            cache.flush()
            done[video.video_id] = results
    all_results = [r for v in videos for r in done[v.video_id]]
    return write_results(os.path.join(out_dir, "results.json"), all_results)
