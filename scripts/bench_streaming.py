"""Peak memory of streaming vs batch prediction on long synthetic videos (tiny random model).

    python scripts/bench_streaming.py                       # 100 and 500 frames, 240x320
    python scripts/bench_streaming.py --frames 500 2000 --size 240 320

Each (path, length) runs in a fresh process, so the peak RSS (``ru_maxrss``) belongs to that run
alone. Frames are generated on the fly (a moving square on noise), never held as a video, as a
lazily decoded file would be. ``stream`` is :class:`StreamingPredictor` without an output cache
(the second pass reruns the network), ``stream+cache`` keeps up to ``--cache-mb`` of outputs,
``batch`` is :meth:`VideoPredictor.predict` (all frames and every query's masks in memory, like
the original). Flat memory shows as equal peaks for the two lengths, up to the results
themselves: ``results MB`` is the size of the streamed per-frame RLEs as JSON (what the results
file must hold anyway), or the (K, T, H, W) boolean masks the batch path returns.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _frames(n: int, h: int, w: int):
    import numpy as np

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 60, (h, w, 3), np.uint8)
    for i in range(n):
        frame = noise.copy()
        x = (5 * i) % max(1, w - h // 3)
        frame[h // 3 : 2 * h // 3, x : x + h // 3] = (220, 50, 40)
        yield frame


def run_one(path: str, n: int, h: int, w: int, cache_mb: int) -> dict:
    import resource

    import numpy as np

    from configs import tiny
    from ov2seg_jax.convert.convert_ov2seg import random_variables
    from ov2seg_jax.inference.predictor import VideoPredictor
    from ov2seg_jax.inference.streaming import StreamingPredictor
    from ov2seg_jax.models.ov2seg import build_model

    cfg = tiny.get_config()
    rng = np.random.default_rng(0)

    variables = random_variables(cfg.model)
    classifier = rng.standard_normal((5, 32)).astype(np.float32)
    predictor = VideoPredictor(
        build_model(cfg.model),
        variables,
        classifier,
        window_size=cfg.inference.window_size,
        top_k=cfg.inference.top_k,
        size_divisibility=cfg.inference.size_divisibility,
    )
    start = time.perf_counter()
    if path == "batch":
        pred = predictor.predict(np.stack(list(_frames(n, h, w))))
        k = len(pred.scores)
        results_mb = pred.masks.nbytes / 2**20
    else:
        cache = cache_mb << 20 if path == "stream+cache" else 0
        pred = StreamingPredictor(predictor, cache_bytes=cache).predict(
            lambda: _frames(n, h, w), (h, w)
        )
        k = len(pred.scores)
        results_mb = len(json.dumps(pred.segmentations)) / 2**20
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "path": path,
        "frames": n,
        "peak_rss_mb": round(peak_mb, 1),
        "s": round(seconds, 1),
        "k": k,
        "results_mb": round(results_mb, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--size", type=int, nargs=2, default=[240, 320], metavar=("H", "W"))
    parser.add_argument("--paths", nargs="+", default=["stream", "stream+cache", "batch"])
    parser.add_argument("--cache-mb", type=int, default=64)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args(argv)
    h, w = args.size
    if args.one:
        path, n = args.one.split(":")
        print(json.dumps(run_one(path, int(n), h, w, args.cache_mb)))
        return
    print(f"tiny model (8 queries, 5 classes), {h}x{w} frames, window 4")
    print(f"{'path':<14} {'frames':>6} {'peak RSS MB':>12} {'results MB':>11} {'seconds':>8}")
    for path in args.paths:
        for n in args.frames:
            cmd = [sys.executable, __file__, "--one", f"{path}:{n}", "--size", str(h), str(w)]
            cmd += ["--cache-mb", str(args.cache_mb)]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{path:<14} {n:>6} {row['peak_rss_mb']:>12} {row['results_mb']:>11} {row['s']:>8}"
            )


if __name__ == "__main__":
    main()
