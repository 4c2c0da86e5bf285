"""Compare a fresh initialisation of our model with the original's (init fixture folder).

    python scripts/check_init.py ../shared/fixtures/init [--seed 0]

The folder needs the ``init/`` layout (``init_stats.json`` + ``init_exact.npz``, see the fixture
README); the architecture is read off its recorded shapes. One row per state-dict entry:
deterministic tensors bit for bit, random ones by distribution (mean, std, bound, uniform vs
normal), plus the recorded cross-tensor relations. Exits 1 if any row fails and 2 (with a one-line
reason) if the folder is unusable.
"""

from __future__ import annotations

import argparse
import os
import sys

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:  # the package need not be installed
    sys.path.insert(0, _REPO_ROOT)

from ov2seg_jax.parity.init_fixture import check_init_dir  # noqa: E402
from ov2seg_jax.parity.report import check_dirs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fixture_dirs", nargs="+", help="init fixture directories")
    parser.add_argument("--seed", type=int, default=0, help="the PRNG seed of our init")
    args = parser.parse_args(argv)
    return check_dirs(args.fixture_dirs, lambda d: check_init_dir(d, args.seed))


if __name__ == "__main__":
    sys.exit(main())
