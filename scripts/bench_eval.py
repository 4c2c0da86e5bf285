"""Time the video evaluator on the synthetic set A of shared/notes/eval-anchor.md.

    python scripts/bench_eval.py --cache /tmp/eval_bench            # builds set A once, then times
    python scripts/bench_eval.py --set-dir /path/with/gt_and_results --runs 5
    python scripts/bench_eval.py --cache /tmp/eval_bench --official-dir /path/to/LVVIS/evaluate

Each run is a fresh ``python`` process (as the anchor's ``/usr/bin/time -v python run_it.py``):
wall time from start to exit, and peak RSS of the main process and of its largest worker
(``getrusage``; their sum bounds the memory in use at any moment). ``--official-dir`` also times
the official evaluator from a folder holding LV-VIS's ``evaluate`` package (lvvis.py,
lvviseval.py, mask.py), with numpy's removed ``np.float`` alias put back for it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import make_eval_bench_set  # noqa: E402  (a sibling script)

ANCHOR = {"wall": "13.1-13.5 s", "rss": "1.02 GiB", "target_wall": 2.5, "target_rss_gib": 0.5}

OURS = """
import json, resource, sys, time
tic = time.perf_counter()
from ov2seg_jax.evaluation import evaluate_video
res = evaluate_video(sys.argv[1], sys.argv[2], workers=int(sys.argv[3]))
done = time.perf_counter()
print(json.dumps({"eval_s": done - tic, "stats": [float(v) for v in res.stats],
  "base": [float(v) for v in res.stats_base], "novel": [float(v) for v in res.stats_novel],
  "self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
  "children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""

OFFICIAL = """
import contextlib, io, json, resource, sys, time
import numpy as np
np.float = float
sys.path.insert(0, sys.argv[3])
from evaluate.lvvis import LVVIS
from evaluate.lvviseval import LVVISeval
tic = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    gt = LVVIS(sys.argv[1]); dt = gt.loadRes(sys.argv[2]); ev = LVVISeval(gt, dt, "segm")
    ev.evaluate(); ev.accumulate(); ev.summarize()
print(json.dumps({"eval_s": time.perf_counter() - tic, "stats": [float(v) for v in ev.stats],
  "self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "children_kb": 0}))
"""


def run_once(code: str, args: list[str], cwd: str) -> dict:
    tic = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, check=False
    )
    wall = time.perf_counter() - tic
    if proc.returncode:
        raise SystemExit(f"benchmark run failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", default="/tmp/eval_bench", help="folder for the built sets")
    p.add_argument("--set-dir", help="use gt.json/results.json from here instead of building")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--official-dir", help="folder containing LV-VIS's evaluate/ package")
    args = p.parse_args()

    folder = args.set_dir or os.path.join(args.cache, "A")
    if not args.set_dir and not make_eval_bench_set.is_built(folder, 200, 20, 1196, 2024):
        print(f"building set A in {folder} (about half a minute) ...", flush=True)
        make_eval_bench_set.build(folder, 200, 20, 1196, 2024, os.cpu_count() or 1)
    gt, res = os.path.join(folder, "gt.json"), os.path.join(folder, "results.json")
    size_mb = os.path.getsize(res) / 1e6
    repo = os.path.dirname(HERE)

    runs = [run_once(OURS, [gt, res, str(args.workers)], repo) for _ in range(args.runs)]
    walls = [r["wall_s"] for r in runs]
    main_gib = max(r["self_kb"] for r in runs) / 2**20
    worker_gib = max(r["children_kb"] for r in runs) / 2**20
    print(
        f"\nset: {folder} (results.json {size_mb:.0f} MB), {args.runs} runs, "
        f"{args.workers} worker(s), {os.cpu_count()} CPUs"
    )
    print(f"{'evaluator':<34}{'wall (s)':>22}{'peak RSS':>34}")
    print(f"{'official LV-VIS (anchor note)':<34}{ANCHOR['wall']:>22}{ANCHOR['rss']:>34}")
    if args.official_dir:
        off = run_once(OFFICIAL, [gt, res, args.official_dir], repo)
        print(
            f"{'official LV-VIS (this machine)':<34}{off['wall_s']:>22.2f}"
            f"{off['self_kb'] / 2**20:>30.2f} GiB"
        )
        same = max(abs(a - b) for a, b in zip(off["stats"], runs[0]["stats"], strict=True))
        print(f"  max |stats difference| vs official: {same:.2e}")
    wall_text = f"{min(walls):.2f} / {statistics.median(walls):.2f} / {max(walls):.2f}"
    rss_text = f"main {main_gib:.2f} + worker {worker_gib:.2f} GiB"
    print(f"{'ov2seg_jax (min/median/max)':<34}{wall_text:>22}{rss_text:>34}")
    print(
        f"{'target':<34}{'<= ' + str(ANCHOR['target_wall']):>22}"
        f"{'<= ' + str(ANCHOR['target_rss_gib']) + ' GiB':>34}"
    )
    print("in-process evaluation time (s): " + ", ".join(f"{r['eval_s']:.2f}" for r in runs))
    print(
        "AP/AP50/AP75 (all): "
        + " / ".join(f"{v:.4f}" for v in runs[0]["stats"][:3])
        + "; AR1/10/100: "
        + " / ".join(f"{v:.4f}" for v in runs[0]["stats"][6:9])
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
