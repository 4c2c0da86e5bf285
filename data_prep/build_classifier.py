"""Build a zero-shot text classifier (``.npy``, one row per category) from class names.

Examples::

    python -m data_prep.build_classifier --names "cat,dog,skateboard" \
        --clip /models/clip-vit-base-patch32 --out classifier.npy
    python -m data_prep.build_classifier --names-file my_classes.txt --clip DIR --out c.npy

The output has the layout of the original's ``fg_bg_5_10_*_ens.npy`` (float32, unit-norm rows, in
the order of the names). ``--clip`` must be a local directory on a machine without network access.
Results are cached (see ``ov2seg_jax.vocabulary.cache``); ``--no-cache`` bypasses the cache.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ov2seg_jax.vocabulary.cache import save_array_atomic
from ov2seg_jax.vocabulary.clip_text import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CLIP_MODEL,
    build_text_classifier,
)
from ov2seg_jax.vocabulary.names import load_vocabulary, prepare_names, read_names_file
from ov2seg_jax.vocabulary.templates import DEFAULT_TEMPLATES


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.build_classifier",
        description="Embed class names with CLIP's text encoder into a (C, D) classifier .npy.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--names", help='comma-separated class names, e.g. "cat,dog" (or a path to a .txt file)'
    )
    source.add_argument(
        "--names-file", help="text file with one class name per line (# comments allowed)"
    )
    parser.add_argument(
        "--clip",
        default=DEFAULT_CLIP_MODEL,
        help=f"CLIP checkpoint directory or hub id (default {DEFAULT_CLIP_MODEL}; offline "
        "machines need a local directory)",
    )
    parser.add_argument("--out", required=True, help="output .npy path (written atomically)")
    parser.add_argument(
        "--template",
        action="append",
        dest="templates",
        metavar="TEMPLATE",
        help='prompt template with one "{}"; repeat for an ensemble (default: built-in ensemble '
        f"of {len(DEFAULT_TEMPLATES)} prompts)",
    )
    parser.add_argument("--cache-dir", default=None, help="classifier cache folder")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    args = parse_args(argv)
    try:
        if args.names_file is not None:
            names = prepare_names(
                read_names_file(args.names_file), source=f"--names-file {args.names_file!r}"
            )
        else:
            names = load_vocabulary(args.names)
        classifier = build_text_classifier(
            names,
            clip_model=args.clip,
            templates=tuple(args.templates) if args.templates else DEFAULT_TEMPLATES,
            cache_dir=args.cache_dir,
            batch_size=args.batch_size,
            use_cache=not args.no_cache,
        )
        out = save_array_atomic(args.out, classifier)
    except (OSError, ValueError, ImportError) as exc:
        print(f"build_classifier: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} shape {tuple(classifier.shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
