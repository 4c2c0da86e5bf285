"""Throughput of the training input pipeline (images/s, or clips/s and frames/s for videos).

    python scripts/bench_data.py                          # a fake LVIS-like set in a temp dir
    python scripts/bench_data.py --image-size 512 --batches 20 --batch-size 8
    python scripts/bench_data.py --dataset lvis_v1_train_norare --root datasets   # real data
    python scripts/bench_data.py --dataset lvvis_train --root datasets --clip-length 2

The fake set is ``--fake-images`` JPEGs of ``--fake-size`` (COCO-like 480x640 by default) with a
few instances each, written by :mod:`data_prep.fake_layouts`. The first ``--warmup`` batches
(pipeline start, thread pools, first file reads) are not timed. Everything else is
``config.data`` of ``configs/ov2seg_r50_lvvis.py`` (LSJ to 1024, repeat-factor sampling, ...).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="", help="registered dataset name (empty: fake data)")
    p.add_argument("--root", default="datasets", help="datasets folder for --dataset")
    p.add_argument("--split", default="train", help="split (lvvis_format only)")
    p.add_argument("--image-size", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=4, help="per host")
    p.add_argument("--batches", type=int, default=10, help="timed batches")
    p.add_argument("--warmup", type=int, default=2, help="untimed batches first")
    p.add_argument("--clip-length", type=int, default=1)
    p.add_argument("--max-instances", type=int, default=100)
    p.add_argument("--num-parallel-calls", type=int, default=-1, help="-1: autotune")
    p.add_argument("--fake-images", type=int, default=32)
    p.add_argument("--fake-size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    return p.parse_args()


def main() -> None:
    args = parse_args()
    from configs import ov2seg_r50_lvvis
    from data_prep import fake_layouts
    from ov2seg_jax.data.pipeline import make_train_iterator

    cfg = ov2seg_r50_lvvis.get_config().data
    cfg.image_size = args.image_size
    cfg.clip_length = args.clip_length
    cfg.max_instances = args.max_instances
    cfg.num_parallel_calls = args.num_parallel_calls
    with tempfile.TemporaryDirectory() as tmp:
        if args.dataset:
            cfg.dataset, cfg.root, cfg.split = args.dataset, args.root, args.split
        else:
            h, w = args.fake_size
            fake_layouts.write_image_layout(
                tmp, "lvis_v1_train", num_images=args.fake_images, height=h, width=w
            )
            cfg.dataset, cfg.root = "lvis_v1_train", tmp
        it = make_train_iterator(cfg, batch_size=args.batch_size, seed=0)
        for _ in range(args.warmup):
            next(it)
        start = time.perf_counter()
        for _ in range(args.batches):
            next(it)
        seconds = time.perf_counter() - start
        problems = it.problems
        del it  # stop the prefetching threads before the fake files go
    examples = args.batches * args.batch_size
    what = cfg.dataset if args.dataset else f"fake {args.fake_size[0]}x{args.fake_size[1]} JPEGs"
    print(
        f"{what}: image_size {args.image_size}, batch {args.batch_size}, clip {args.clip_length}, "
        f"{os.cpu_count()} CPUs"
    )
    unit = "images" if args.clip_length == 1 else "clips"
    line = f"{examples / seconds:.1f} {unit}/s"
    if args.clip_length > 1:
        line += f", {examples * args.clip_length / seconds:.1f} frames/s"
    print(f"{line} ({examples} in {seconds:.2f} s); problems: {problems or 'none'}")


if __name__ == "__main__":
    main()
