"""Build the synthetic video-AP timing sets of ``shared/notes/eval-anchor.md``.

Set A: 200 videos x 20 frames at 720x1280, K = 1196 categories, 5 GT tracks and exactly 100
results per video. Sets B (K = 40) and C (800 videos x 30 frames) only change the flags.
Every mask is an axis-aligned ellipse written straight to column-major RLE, one y-run per column,
so no full frame is ever rasterised. All random numbers come from one
``numpy.random.default_rng(seed)`` stream drawn video by video (draws first, masks after, so the
mask work can use several processes without changing the set).

    python scripts/make_eval_bench_set.py --out /tmp/eval_bench/A            # set A
    python scripts/make_eval_bench_set.py --out /tmp/eval_bench/B --categories 40
    python scripts/make_eval_bench_set.py --out /tmp/eval_bench/C --videos 800 --frames 30

Writes ``gt.json`` and ``results.json`` (compact JSON) and ``set.json`` (the recipe parameters).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
from pycocotools import mask as mask_utils

HEIGHT, WIDTH = 720, 1280
LVVIS_PARTITION_COUNTS = (77, 564, 240, 315)  # ids 1-77: 0, 78-641: 1, 642-881: 2, 882-1196: 3


@dataclass(frozen=True)
class Track:
    """An ellipse moving at constant velocity, visible on frames [start, stop)."""

    cx: float
    cy: float
    rx: float
    ry: float
    vx: float
    vy: float
    start: int
    stop: int

    def jittered(self, strength: float, angle: float, scale: float) -> Track:
        return Track(
            cx=self.cx + math.cos(angle) * strength * self.rx,
            cy=self.cy + math.sin(angle) * strength * self.ry,
            rx=self.rx * scale,
            ry=self.ry * scale,
            vx=self.vx,
            vy=self.vy,
            start=self.start,
            stop=self.stop,
        )


def partition_of(cat_id: int, num_categories: int) -> int:
    if num_categories != 1196:
        return (cat_id - 1) % 4
    bound = 0
    for part, count in enumerate(LVVIS_PARTITION_COUNTS):
        bound += count
        if cat_id <= bound:
            return part
    raise ValueError(cat_id)


def draw_track(rng: np.random.Generator, frames: int, full: bool) -> Track:
    rx = rng.uniform(20, 200)
    ry = rng.uniform(20, 150)
    cx = rng.uniform(rx, WIDTH - rx)
    cy = rng.uniform(ry, HEIGHT - ry)
    vx = rng.uniform(-6, 6)
    vy = rng.uniform(-4, 4)
    if full:
        start, stop = 0, frames
    else:
        length = int(rng.integers(frames // 2, frames + 1))
        start = int(rng.integers(0, frames - length + 1))
        stop = start + length
    return Track(cx, cy, rx, ry, vx, vy, start, stop)


def draw_jitter(rng: np.random.Generator, track: Track, low: float, high: float) -> Track:
    strength = rng.uniform(low, high)
    angle = rng.uniform(0, 2 * math.pi)
    scale = 1 + rng.uniform(-strength, strength) / 2
    return track.jittered(strength, angle, scale)


def draw_video(rng: np.random.Generator, frames: int, num_categories: int) -> dict:
    """All random draws of one video, in the recipe's order (GT, good, confusions, dups, junk)."""
    gt = [
        (draw_track(rng, frames, full=False), int(rng.integers(1, num_categories + 1)))
        for _ in range(5)
    ]
    results: list[tuple[Track, int, float]] = []
    for track, cat in gt:  # 5 good
        jit = draw_jitter(rng, track, 0.0, 0.3)
        results.append((jit, cat, round(float(rng.uniform(0.5, 1.0)), 6)))
    for track, _cat in gt:  # 5 confusions
        jit = draw_jitter(rng, track, 0.0, 0.3)
        cat = int(rng.integers(1, num_categories + 1))
        results.append((jit, cat, round(float(rng.uniform(0.2, 0.8)), 6)))
    for _ in range(10):  # 10 duplicates
        track, cat = gt[int(rng.integers(0, 5))]
        jit = draw_jitter(rng, track, 0.1, 0.6)
        results.append((jit, cat, round(float(rng.uniform(0.1, 0.6)), 6)))
    for _ in range(80):  # 80 junk
        track = draw_track(rng, frames, full=True)
        if rng.uniform() < 0.5:
            cat = gt[int(rng.integers(0, 5))][1]
        else:
            cat = int(rng.integers(1, num_categories + 1))
        results.append((track, cat, round(float(rng.uniform(0.0, 0.5)), 6)))
    return {"gt": gt, "results": results}


def _inside(
    x: np.ndarray, y: np.ndarray, track: Track, cx: np.ndarray, cy: np.ndarray
) -> np.ndarray:
    return ((x + 0.5 - cx) / track.rx) ** 2 + ((y + 0.5 - cy) / track.ry) ** 2 <= 1.0


def track_runs(track: Track, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame and column the inclusive y-range of the ellipse (empty where lo > hi)."""
    t = np.arange(frames, dtype=np.float64)[:, None]
    cx = track.cx + track.vx * t
    cy = track.cy + track.vy * t
    x = np.arange(WIDTH, dtype=np.float64)[None, :]
    dx2 = ((x + 0.5 - cx) / track.rx) ** 2
    half = track.ry * np.sqrt(np.clip(1.0 - dx2, 0.0, None))
    lo = np.ceil(cy - half - 0.5)
    hi = np.floor(cy + half - 0.5)
    # settle rounding at the boundary against the defining inequality
    lo = np.where(_inside(x, lo, track, cx, cy), lo, lo + 1)
    lo = np.where(_inside(x, lo - 1, track, cx, cy), lo - 1, lo)
    hi = np.where(_inside(x, hi, track, cx, cy), hi, hi - 1)
    hi = np.where(_inside(x, hi + 1, track, cx, cy), hi + 1, hi)
    lo = np.clip(lo, 0, HEIGHT - 1).astype(np.int64)
    hi = np.clip(hi, 0, HEIGHT - 1).astype(np.int64)
    empty = (dx2 > 1.0) | (lo > hi) | ~_inside(x, lo, track, cx, cy)
    visible = np.zeros(frames, dtype=bool)
    visible[track.start : track.stop] = True
    empty |= ~visible[:, None]
    return lo, hi, empty


def frame_counts(lo: np.ndarray, hi: np.ndarray, empty: np.ndarray) -> tuple[list[int], int, list]:
    """Uncompressed column-major RLE counts, area and bbox of one frame."""
    cols = np.flatnonzero(~empty)
    if cols.size == 0:
        return [HEIGHT * WIDTH], 0, [0.0, 0.0, 0.0, 0.0]
    starts = cols * HEIGHT + lo[cols]
    ends = cols * HEIGHT + hi[cols] + 1
    joined = ends[:-1] == starts[1:]
    run_starts = starts[np.r_[True, ~joined]]
    run_ends = ends[np.r_[~joined, True]]
    counts = np.empty(2 * run_starts.size + 1, dtype=np.int64)
    counts[0] = run_starts[0]
    counts[1:-1:2] = run_ends - run_starts
    counts[2:-1:2] = run_starts[1:] - run_ends[:-1]
    counts[-1] = HEIGHT * WIDTH - run_ends[-1]
    area = int((run_ends - run_starts).sum())
    y0, y1 = int(lo[cols].min()), int(hi[cols].max())
    bbox = [float(cols[0]), float(y0), float(cols[-1] - cols[0] + 1), float(y1 - y0 + 1)]
    return counts.tolist(), area, bbox


def encode_track(track: Track, frames: int) -> tuple[list[str], list[int], list[list]]:
    lo, hi, empty = track_runs(track, frames)
    per_frame = [frame_counts(lo[t], hi[t], empty[t]) for t in range(frames)]
    rles = mask_utils.frPyObjects(
        [{"counts": c, "size": [HEIGHT, WIDTH]} for c, _, _ in per_frame], HEIGHT, WIDTH
    )
    counts = [r["counts"].decode("ascii") for r in rles]
    return counts, [a for _, a, _ in per_frame], [b for _, _, b in per_frame]


def video_json(args: tuple[int, int, dict, int]) -> tuple[list[str], list[str]]:
    """JSON text of one video's GT annotations and results."""
    video_id, frames, draws, first_ann_id = args
    size = [HEIGHT, WIDTH]
    anns = []
    for j, (track, cat) in enumerate(draws["gt"]):
        counts, areas, bboxes = encode_track(track, frames)
        visible = range(track.start, track.stop)
        ann = {
            "id": first_ann_id + j,
            "video_id": video_id,
            "category_id": cat,
            "iscrowd": 0,
            "segmentations": [
                {"size": size, "counts": c} if t in visible else None for t, c in enumerate(counts)
            ],
            "areas": [a if t in visible else None for t, a in enumerate(areas)],
            "bboxes": [b if t in visible else None for t, b in enumerate(bboxes)],
            "length": 1,
            "height": HEIGHT,
            "width": WIDTH,
        }
        anns.append(json.dumps(ann, separators=(",", ":")))
    results = []
    for track, cat, score in draws["results"]:
        counts, _, _ = encode_track(track, frames)
        res = {
            "video_id": video_id,
            "category_id": cat,
            "score": score,
            "segmentations": [{"size": size, "counts": c} for c in counts],
        }
        results.append(json.dumps(res, separators=(",", ":")))
    return anns, results


def build(out: str, videos: int, frames: int, categories: int, seed: int, workers: int) -> None:
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    draws = [draw_video(rng, frames, categories) for _ in range(videos)]
    jobs = [(v + 1, frames, d, 5 * v + 1) for v, d in enumerate(draws)]
    head = {
        "videos": [
            {
                "id": v + 1,
                "height": HEIGHT,
                "width": WIDTH,
                "length": frames,
                "file_names": [f"v{v + 1:05d}/{t:05d}.jpg" for t in range(frames)],
            }
            for v in range(videos)
        ],
        "categories": [
            {"id": c, "name": f"category_{c}", "partition": partition_of(c, categories)}
            for c in range(1, categories + 1)
        ],
    }

    def outputs() -> Iterator[tuple[list[str], list[str]]]:
        if workers <= 1:
            yield from map(video_json, jobs)
            return
        with get_context("fork").Pool(workers) as pool:
            yield from pool.imap(video_json, jobs, chunksize=4)

    gt_tmp, res_tmp = os.path.join(out, "gt.json.tmp"), os.path.join(out, "results.json.tmp")
    with open(gt_tmp, "w") as gt_file, open(res_tmp, "w") as res_file:
        head_text = json.dumps(head, separators=(",", ":"))
        gt_file.write(head_text[:-1] + ',"annotations":[')
        res_file.write("[")
        for v, (anns, results) in enumerate(outputs()):
            gt_file.write(("," if v else "") + ",".join(anns))
            res_file.write(("," if v else "") + ",".join(results))
        gt_file.write("]}")
        res_file.write("]")
    os.replace(gt_tmp, os.path.join(out, "gt.json"))
    os.replace(res_tmp, os.path.join(out, "results.json"))
    recipe = {
        "videos": videos,
        "frames": frames,
        "categories": categories,
        "seed": seed,
        "height": HEIGHT,
        "width": WIDTH,
        "results_per_video": 100,
        "gt_per_video": 5,
    }
    with open(os.path.join(out, "set.json"), "w") as f:
        json.dump(recipe, f, indent=1)


def is_built(out: str, videos: int, frames: int, categories: int, seed: int) -> bool:
    """True when ``out`` already holds a complete set built with these parameters."""
    try:
        with open(os.path.join(out, "set.json")) as f:
            recipe = json.load(f)
    except (OSError, ValueError):
        return False
    wanted = {"videos": videos, "frames": frames, "categories": categories, "seed": seed}
    files_there = all(os.path.isfile(os.path.join(out, n)) for n in ("gt.json", "results.json"))
    return files_there and all(recipe.get(k) == v for k, v in wanted.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for gt.json / results.json")
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--categories", type=int, default=1196)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args()
    if not args.force and is_built(args.out, args.videos, args.frames, args.categories, args.seed):
        print(f"{args.out}: already built")
        return
    tic = time.perf_counter()
    build(args.out, args.videos, args.frames, args.categories, args.seed, args.workers)
    size = os.path.getsize(os.path.join(args.out, "results.json")) / 2**20
    print(f"{args.out}: built in {time.perf_counter() - tic:.1f} s (results.json {size:.0f} MiB)")


if __name__ == "__main__":
    main()
