"""Prediction over a whole dataset split, resumable video by video, split over the hosts.

Each finished video's results are appended as one JSON line to a cache file; a rerun skips the
videos already in any cache file (a line cut short by a crash is dropped and its video redone),
then writes the concatenated ``results.json``. Frames are decoded by a thread pool, the next
videos read ahead while the network runs.

In a process group (``jax.process_count() > 1``) host ``p`` of ``P`` predicts videos
``p, p + P, p + 2P, ...`` of the split and appends to its own cache (``predictions.jsonl`` for
process 0, ``predictions.<p>.jsonl`` for the others), so no video is predicted or written twice.
After a barrier, process 0 merges every cache in the split's order into ``results.json``: the
same file as one process writes. A rerun with another number of processes reads all caches, so
resuming does not depend on the group's size.
"""

from __future__ import annotations

import glob
import json
import os

import jax
import ml_collections
from tqdm import tqdm

from ov2seg_jax.data.eval_frames import prefetch_videos
from ov2seg_jax.data.video_json import VideoDataset
from ov2seg_jax.inference.predictor import VideoPredictor
from ov2seg_jax.inference.results import to_results, write_results
from ov2seg_jax.train import distributed

CACHE = "predictions.jsonl"


def cache_name(process_index: int) -> str:
    """The cache file of one host: ``predictions.jsonl`` for process 0."""
    return CACHE if process_index == 0 else f"predictions.{process_index}.jsonl"


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


def _load_caches(out_dir: str) -> dict[int, list[dict]]:
    """Every host's finished videos (of this and earlier runs, of any group size)."""
    done: dict[int, list[dict]] = {}
    paths = [
        os.path.join(out_dir, CACHE),
        *sorted(glob.glob(os.path.join(out_dir, "predictions.*.jsonl"))),
    ]
    for path in paths:
        done.update(_load_cache(path))
    return done


def predict_dataset(
    predictor: VideoPredictor,
    dataset: VideoDataset,
    out_dir: str,
    inference: ml_collections.ConfigDict,
    max_videos: int = 0,
) -> str:
    """Predict every video (or the first ``max_videos``) and write ``out_dir/results.json``.

    Every process of a group calls it; each predicts its share, process 0 writes the results.
    """
    index, count = jax.process_index(), jax.process_count()
    os.makedirs(out_dir, exist_ok=True)
    done = _load_caches(out_dir)
    videos = dataset.videos[:max_videos] if max_videos else dataset.videos
    todo = [v for v in videos[index::count] if v.video_id not in done]
    with open(os.path.join(out_dir, cache_name(index)), "a") as cache:
        videos_with_frames = prefetch_videos(todo, inference.min_size_test, inference.max_size_test)
        for video, frames, _ in tqdm(
            videos_with_frames,
            total=len(todo),
            desc="videos",
            unit="video",
            disable=not todo or index != 0,
        ):
            pred = predictor.predict(frames, output_size=(video.height, video.width))
            results = to_results(video.video_id, pred, dataset.category_ids)
            cache.write(json.dumps({"video_id": video.video_id, "results": results}) + "\n")
            cache.flush()
            done[video.video_id] = results
    results_path = os.path.join(out_dir, "results.json")
    distributed.barrier("predict_dataset: every host's share is written")
    if index == 0:
        if count > 1:
            done = _load_caches(out_dir)
        write_results(results_path, [r for v in videos for r in done[v.video_id]])
    distributed.barrier("predict_dataset: results.json is written")
    return results_path
