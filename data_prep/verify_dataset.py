"""Check a dataset in the original's ``datasets/`` layout before training on it.

Examples::

    python -m data_prep.verify_dataset --dataset lvvis_train --root datasets
    python -m data_prep.verify_dataset --dataset lvis_v1_train_norare --root datasets --max-records 500
    python -m data_prep.verify_dataset --dataset lvvis_format --root datasets/synthetic --split val
    python -m data_prep.verify_dataset --dataset tfds:lvvis:train --root tfds

Prints where the files are looked for, the counts (records, frames, instances, categories by
partition) and every kind of problem with its count: problems in the json (unknown categories,
empty videos, malformed entries) and, unless ``--no-files``, in the files (missing images,
undecodable JPEGs, frames of another size than annotated, undecodable segmentations), which the
training pipeline would skip with a warning. Exits with status 1 when any file problem is found.

A ``tfds:<name>[/<config>]:<split>`` dataset (prepared by :mod:`data_prep.prepare_tfds`, read
from the TFDS data dir ``--root``) is checked the same way: its records are rebuilt from the
stored split and every stored frame and mask is decoded.

The pipeline reads the image folders and jsons directly, or a prepared TFDS split; the folders
need no conversion (a conversion would duplicate LVIS/COCO on disk and go stale when a json
changes, and parallel JPEG reads keep up with a training step on local disks:
``scripts/bench_data.py`` measures it). :mod:`data_prep.make_lvis_norare` writes the one json the
original expects that LVIS does not ship.
"""

from __future__ import annotations

import argparse
import collections
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ov2seg_jax.data import registry
from ov2seg_jax.data.loader import ExampleError, read_frame
from ov2seg_jax.data.masks import SegmentationError, decode_segmentation
from ov2seg_jax.data.records import ProblemTally, TrainRecord


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    known = ", ".join(sorted([*registry.DATASETS, registry.LVVIS_FORMAT]))
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.verify_dataset",
        description="Count the records of a dataset and list its problems.",
    )
    parser.add_argument(
        "--dataset",
        required=True,
        help=f"registered name: {known}; or tfds:<name>[/<config>]:<split> (a prepared split)",
    )
    parser.add_argument(
        "--root",
        default="datasets",
        help="the datasets folder (or LV-VIS root); for tfds: names, the TFDS data dir",
    )
    parser.add_argument("--split", default="train", help="split folder (lvvis_format only)")
    parser.add_argument("--base-only", action="store_true", help="drop novel annotations")
    parser.add_argument("--no-files", action="store_true", help="check the json only")
    parser.add_argument(
        "--max-records", type=int, default=0, help="check the files of the first N records (0: all)"
    )
    parser.add_argument("--workers", type=int, default=8, help="threads reading files")
    return parser.parse_args(argv)


def check_record(record: TrainRecord, tally: ProblemTally) -> None:
    """Read every frame and decode every segmentation of ``record``, counting what fails."""
    h, w = record.height, record.width
    for t, path in enumerate(record.frame_paths):
        try:
            read_frame(path, h, w)
        except ExampleError as e:
            tally.add(e.kind, str(e))
        for j, track in enumerate(record.instances):
            seg = track.segmentations[t]
            if seg is None:
                continue
            try:
                decode_segmentation(seg, h, w)
            except SegmentationError as e:
                tally.add("bad_segmentation", f"{path}, instance {j}: {e}")


def verify(args: argparse.Namespace) -> dict[str, int]:
    """Print the report; returns the file problems by kind."""
    if args.dataset.startswith(registry.TFDS_PREFIX):
        print(f"dataset {args.dataset}: TFDS data dir {args.root or '(default)'}")
    else:
        entry = registry.resolve(args.dataset, args.root, args.split)
        print(f"dataset {args.dataset}: json {entry.json}, images {entry.image_root}")
    ds = registry.load_dataset(args.dataset, args.root, args.split, args.base_only)
    frames = sum(len(r.frame_paths) for r in ds.records)
    instances = sum(len(r.instances) for r in ds.records)
    parts = collections.Counter(ds.partition)
    trained = sum(w > 0 for w in ds.frequency_weight)
    print(f"  {'videos' if ds.is_video else 'images'}: {len(ds.records)}, frames: {frames}")
    print(f"  instances: {instances}")
    print(
        f"  categories: {len(ds.category_ids)} ({parts['base']} base, {parts['novel']} novel), "
        f"{trained} with training annotations"
    )
    print(f"  json problems: {ds.problems or 'none'}")
    if args.no_files:
        return {}
    records = ds.records[: args.max_records] if args.max_records > 0 else ds.records
    tally = ProblemTally()
    with ThreadPoolExecutor(max(1, args.workers)) as pool:
        list(pool.map(lambda r: check_record(r, tally), records))
    found = tally.as_dict()
    print(f"  files of {len(records)} records checked; problems: {found or 'none'}")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        found = verify(args)
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
