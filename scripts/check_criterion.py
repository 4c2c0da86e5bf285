"""Replay the original's training loss on a criterion fixture folder and print a parity table.

    python scripts/check_criterion.py ../shared/fixtures/criterion

The folder needs the ``criterion/`` layout (``criterion.npz`` + ``criterion.json``, see the fixture
README); batch size, number of aux layers, classes and points are read from it. Every recorded
random draw is replayed; one row per matched image and layer, per federated category set and per
loss term. Exits 1 if any row fails and 2 (with a one-line reason) if the folder is unusable.
"""

from __future__ import annotations

import argparse
import os
import sys

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:  # the package need not be installed
    sys.path.insert(0, _REPO_ROOT)

from ov2seg_jax.parity.criterion_fixture import check_criterion_dir  # noqa: E402
from ov2seg_jax.parity.report import check_dirs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fixture_dirs", nargs="+", help="criterion fixture directories")
    parser.add_argument(
        "--extra-padding",
        type=int,
        default=1,
        help="invalid target entries added beyond the largest image (default 1)",
    )
    args = parser.parse_args(argv)
    return check_dirs(
        args.fixture_dirs, lambda d: check_criterion_dir(d, extra_padding=args.extra_padding)
    )


if __name__ == "__main__":
    sys.exit(main())
