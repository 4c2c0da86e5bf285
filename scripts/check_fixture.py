"""Parity of ov2seg-jax with the PyTorch original on a golden fixture directory.

    python scripts/check_fixture.py ../shared/fixtures/ov2seg_small
    python scripts/check_fixture.py ../shared/fixtures/tracking

Converts the fixture's weights through the real converter, runs our model on the stored clip(s)
and prints one row per stored tensor: max abs error, max error relative to the tensor's max |value|
and pass/fail against the stated tolerance. Exits 1 if any row fails, 2 on unusable input.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from ov2seg_jax.parity.check import check_fixture_dir  # noqa: E402
from ov2seg_jax.parity.report import check_dirs  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fixture_dirs", nargs="+", help="model or tracking fixture directories")
    args = parser.parse_args(argv)
    jax.config.update("jax_default_matmul_precision", "highest")
    return check_dirs(args.fixture_dirs, check_fixture_dir)


if __name__ == "__main__":
    sys.exit(main())
