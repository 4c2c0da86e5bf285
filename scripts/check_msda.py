"""Check every MSDA implementation against a folder of golden cases and print a parity table.

Usage (from the repository root)::

    python scripts/check_msda.py /work/shared/fixtures/msda

The folder needs the ``msda/`` fixture layout: ``index.json`` listing the cases and one
``<case>.npz`` per case. Each case runs through every implementation available on this machine
(on CPU the Pallas kernels run in interpret mode) in float32 and float64 (``pallas_tpu``: float32
only, TPUs having no float64); one row per (case, implementation, dtype, tensor) gives the max
abs error, the error relative to max|ref|, the tolerance and PASS/FAIL. The exit status is 1 if
any row fails and 2 if the folder is not a case folder.
"""

from __future__ import annotations

import argparse
import os
import sys

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:  # the package need not be installed
    sys.path.insert(0, _REPO_ROOT)

from kernels.ms_deform_attn import available_implementations  # noqa: E402
from kernels.ms_deform_attn.check import (  # noqa: E402
    RELATIVE_TOLERANCE,
    check_case,
    list_cases,
    load_case,
    supports,
)
from kernels.report import Row, format_table  # noqa: E402


def check_folder(root: str, implementations: tuple[str, ...], dtypes: tuple[str, ...]) -> list[Row]:
    """All rows for all cases of ``root``."""
    rows: list[Row] = []
    for name in list_cases(root):
        case = load_case(root, name)
        for implementation in implementations:
            for dtype in dtypes:
                if supports(implementation, dtype):
                    rows.extend(check_case(case, implementation, dtype))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="folder with index.json and <case>.npz files")
    parser.add_argument(
        "--implementation",
        action="append",
        choices=available_implementations(),
        help="restrict to this implementation (repeatable); default: all available",
    )
    parser.add_argument(
        "--dtype",
        action="append",
        choices=sorted(RELATIVE_TOLERANCE),
        help="restrict to this compute dtype (repeatable); default: float32 and float64",
    )
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.folder, "index.json")):
        print(f"error: {args.folder} has no index.json (not an msda case folder)", file=sys.stderr)
        return 2
    implementations = tuple(args.implementation or available_implementations())
    dtypes = tuple(args.dtype or ("float32", "float64"))
    rows = check_folder(args.folder, implementations, dtypes)
    print(format_table(rows, title=f"MSDA parity: {os.path.abspath(args.folder)}"))
    return 0 if all(row.passed for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
