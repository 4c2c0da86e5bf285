"""Build the built-in synthetic open-vocabulary video dataset (coloured moving shapes).

Examples::

    python -m data_prep.build_synthetic --root datasets/synthetic
    python -m data_prep.build_synthetic --root /tmp/synth --train-videos 40 --val-videos 16 \
        --size 64

The dataset is written in the LV-VIS layout (``<root>/{train,val}/JPEGImages`` and
``<root>/{train,val}/{train,val}_instances.json``) together with ``categories.json``,
``categories.txt`` and the compositional text classifier ``text_classifier.npy``. A complete
dataset built with the same settings is kept as it is. See :mod:`ov2seg_jax.data.synthetic`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence

from ov2seg_jax.data.synthetic import (
    SyntheticSpec,
    build_synthetic_dataset,
    is_complete,
    novel_pairs,
    read_manifest,
)

_DEFAULT = SyntheticSpec()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.build_synthetic",
        description="Build the synthetic '<colour> <shape>' video dataset in the LV-VIS layout.",
    )
    parser.add_argument("--root", default="datasets/synthetic", help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-videos", type=int, default=_DEFAULT.num_train_videos)
    parser.add_argument("--val-videos", type=int, default=_DEFAULT.num_val_videos)
    parser.add_argument("--frames", type=int, default=_DEFAULT.num_frames, help="frames per video")
    parser.add_argument(
        "--size",
        type=int,
        default=_DEFAULT.height,
        help=f"frame height and width (default {_DEFAULT.height}); object sizes scale with it",
    )
    parser.add_argument("--text-dim", type=int, default=_DEFAULT.text_dim)
    return parser.parse_args(argv)


def spec_from_args(args: argparse.Namespace) -> SyntheticSpec:
    """The spec the flags describe; object sizes scale with ``--size`` relative to the default."""
    scale = args.size / _DEFAULT.height
    min_size = max(4, round(_DEFAULT.min_size * scale))
    step = max(1, round(_DEFAULT.size_step * scale))
    max_size = max(round(_DEFAULT.max_size * scale), min_size + step * (_DEFAULT.max_objects - 1))
    return dataclasses.replace(
        _DEFAULT,
        num_train_videos=args.train_videos,
        num_val_videos=args.val_videos,
        num_frames=args.frames,
        height=args.size,
        width=args.size,
        min_size=min_size,
        max_size=max_size,
        size_step=step,
        max_speed=_DEFAULT.max_speed * scale,
        text_dim=args.text_dim,
    )


def format_summary(paths: dict[str, str], manifest: dict) -> str:
    """A few lines describing the built dataset."""
    lines = [f"synthetic dataset at {paths['root']} (seed {manifest['seed']})"]
    for split, s in manifest["summary"].items():
        novel = f"{s['novel_instances']} of novel categories"
        if s["novel_instances"]:
            novel += f", at least {s['min_instances_per_novel']} of each"
        lines.append(
            f"  {split}: {s['videos']} videos, {s['frames']} frames, {s['instances']} instances "
            f"({novel}), {s['null_frames']} instance-frames fully occluded"
        )
        lines.append(f"    {paths[split + '_json']}")
    novel = ", ".join(f"{c} {s}" for c, s in novel_pairs())
    lines.append(f"  novel categories (val only): {novel}")
    lines.append(f"  vocabulary: {paths['categories_txt']}")
    lines.append(f"  text classifier: {paths['classifier']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        spec = spec_from_args(args)
        existed = is_complete(args.root, spec, args.seed)
        paths = build_synthetic_dataset(args.root, spec, seed=args.seed)
    except (OSError, ValueError) as exc:
        print(f"build_synthetic: error: {exc}", file=sys.stderr)
        return 2
    manifest = read_manifest(paths["root"])
    print(format_summary(paths, manifest))
    if existed:
        print("  already complete with these settings; nothing rewritten")
    else:
        print(f"  built in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
