"""Prepare a video dataset as TFDS files (ArrayRecord by default) from its local folder layout.

Examples::

    python -m data_prep.prepare_tfds --dataset lvvis --manual-dir datasets/LVVIS --data-dir tfds
    python -m data_prep.prepare_tfds --dataset ovis --manual-dir datasets/OVIS --data-dir tfds
    python -m data_prep.prepare_tfds --dataset ytvis_2021 --manual-dir datasets/ytvis_2021 \
        --data-dir tfds
    python -m data_prep.prepare_tfds --dataset ov2seg_synthetic --data-dir tfds   # renders it
    python -m data_prep.prepare_tfds --dataset ov2seg_synthetic \
        --manual-dir datasets/synthetic --data-dir tfds                         # an existing build

Then train or evaluate from it with ``--config.data.dataset=tfds:lvvis:train
--config.data.root=tfds`` or ``--config.evaluate.dataset=tfds:lvvis:val
--config.evaluate.root=tfds``. The same builders run under ``tfds build`` (the module paths are
``ov2seg_jax/data/tfds/<name>.py``). TFDS shows a progress bar per split; a prepared dataset is
kept as it is unless ``--overwrite``. The layout is checked before anything is written: a
missing file or folder is reported in one line naming it (exit status 2).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.prepare_tfds",
        description="Prepare LV-VIS, OVIS, YouTube-VIS 2021 or the synthetic set as TFDS files.",
    )
    parser.add_argument(
        "--dataset", required=True, help="lvvis, ovis, ytvis_2021 or ov2seg_synthetic"
    )
    parser.add_argument(
        "--manual-dir", default="", help="the dataset's folder in the original's layout"
    )
    parser.add_argument(
        "--data-dir", default="", help="TFDS data dir ('': $TFDS_DATA_DIR or ~/tensorflow_datasets)"
    )
    parser.add_argument(
        "--file-format", default="array_record", choices=("array_record", "tfrecord")
    )
    parser.add_argument("--overwrite", action="store_true", help="prepare again if prepared")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from ov2seg_jax.data.tfds.builder import LayoutError
    from ov2seg_jax.data.tfds.prepare import folder_size, prepare

    start = time.perf_counter()
    try:
        builder = prepare(
            args.dataset,
            args.manual_dir,
            args.data_dir,
            file_format=args.file_format,
            overwrite=args.overwrite,
        )
    except (LayoutError, FileNotFoundError, ValueError) as e:
        print(f"prepare_tfds: error: {str(e).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    info = builder.info
    print(f"{args.dataset} {info.version} at {builder.data_dir} ({info.file_format.value})")
    for name, split in sorted(info.splits.items()):
        annotated = (info.metadata or {}).get("annotated", {}).get(name)
        gt = "with annotations" if annotated else "without annotations"
        print(f"  {name}: {split.num_examples} videos, {split.num_bytes / 2**20:.1f} MiB, {gt}")
    print(f"  on disk: {folder_size(builder.data_dir) / 2**20:.1f} MiB; {seconds:.1f} s")
    print(
        f"  read with --config.data.dataset=tfds:{args.dataset}:<split> "
        f"--config.data.root={args.data_dir or '~/tensorflow_datasets'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
