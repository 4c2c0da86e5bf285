"""Comparison rows and the printed parity table shared by every fixture checker.

``Tolerance``, ``Row``, ``compare`` and ``format_table`` are defined in :mod:`kernels.report`
(the kernel checkers use them too); the model-level comparisons and the checker loop are here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from kernels.report import Row, Tolerance, compare, format_table

__all__ = [
    "Row",
    "Tolerance",
    "check_dirs",
    "compare",
    "compare_exact",
    "compare_fraction",
    "format_table",
]


def compare_exact(name: str, ours, ref, note: str = "") -> Row:
    """Integer/bool arrays: every element must be equal."""
    ours = np.asarray(ours)
    ref = np.asarray(ref)
    if ours.shape != ref.shape:
        return Row(
            name,
            float("nan"),
            float("nan"),
            "exact",
            False,
            f"shape {ours.shape} != reference {ref.shape}",
        )
    mismatches = int(np.sum(ours != ref))
    return Row(
        name,
        float(mismatches),
        float(mismatches) / max(ref.size, 1),
        "exact",
        mismatches == 0,
        note or f"{mismatches} of {ref.size} differ",
    )


def compare_fraction(name: str, ours, ref, max_fraction: float, note: str = "") -> Row:
    """Binary arrays: at most ``max_fraction`` of the elements may differ."""
    ours = np.asarray(ours, bool)
    ref = np.asarray(ref, bool)
    if ours.shape != ref.shape:
        return Row(
            name,
            float("nan"),
            float("nan"),
            f"<= {max_fraction:g} differ",
            False,
            f"shape {ours.shape} != reference {ref.shape}",
        )
    mismatches = int(np.sum(ours != ref))
    frac = mismatches / max(ref.size, 1)
    return Row(
        name,
        float(mismatches),
        frac,
        f"<= {max_fraction:g} of pixels differ",
        frac <= max_fraction,
        note or f"{mismatches} of {ref.size} pixels differ",
    )


def check_dirs(dirs: Sequence[str], check_dir: Callable[[str], list[Row]]) -> int:
    """A checker script's main loop: print each folder's table; exit status 0 when every row
    passes, 1 when a row fails, 2 (with a one-line reason) when a folder is unusable."""
    failed = False
    for d in dirs:
        start = time.time()
        try:
            rows = check_dir(d)
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {d}: {e}", file=sys.stderr)
            return 2
        print(format_table(rows, title=f"== {d} ({time.time() - start:.1f} s)"))
        print()
        failed |= not all(r.passed for r in rows)
    return 1 if failed else 0
