"""Comparison rows and the printed parity table: the pieces every parity checker shares.

They live at the bottom of the package graph (``kernels`` imports nothing from ``ov2seg_jax``) so
the kernel checkers use them without importing the model package; ``ov2seg_jax.parity.report``
re-exports them beside the model-level comparisons.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """Elementwise bound ``|ours - ref| <= atol + rtol * |ref|``."""

    atol: float
    rtol: float = 0.0

    def describe(self) -> str:
        return f"atol={self.atol:g}" + (f" rtol={self.rtol:g}" if self.rtol else "")


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of a parity table."""

    name: str
    max_abs: float
    max_rel: float  # max |ours - ref| divided by max |ref|
    criterion: str
    passed: bool
    note: str = ""


def compare(name: str, ours, ref, tol: Tolerance, note: str = "") -> Row:
    """Compare two float arrays of the same shape against ``tol``."""
    ours = np.asarray(ours, np.float64)
    ref = np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        return Row(
            name,
            float("nan"),
            float("nan"),
            tol.describe(),
            False,
            f"shape {ours.shape} != reference {ref.shape}",
        )
    if ref.size == 0:
        return Row(name, 0.0, 0.0, tol.describe(), True, note or "empty")
    diff = np.abs(ours - ref)
    if not np.all(np.isfinite(ours)):
        return Row(name, float("inf"), float("inf"), tol.describe(), False, "non-finite values")
    absmax = float(np.max(np.abs(ref)))
    max_abs = float(diff.max())
    passed = bool(np.all(diff <= tol.atol + tol.rtol * np.abs(ref)))
    return Row(
        name, max_abs, max_abs / absmax if absmax > 0 else max_abs, tol.describe(), passed, note
    )


def format_table(rows: list[Row], title: str = "") -> str:
    """Render rows as a fixed-width text table with a PASS/FAIL column."""
    header = f"{'tensor':<44} {'max abs err':>12} {'max rel err':>12}  {'criterion':<28} result"
    lines = [title] if title else []
    lines += [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.name:<44} {r.max_abs:>12.3e} {r.max_rel:>12.3e}  {r.criterion:<28} "
            f"{'PASS' if r.passed else 'FAIL'}" + (f"  ({r.note})" if r.note else "")
        )
    failed = sum(not r.passed for r in rows)
    lines.append(
        f"{len(rows) - failed} of {len(rows)} rows within tolerance"
        + (f", {failed} FAILED" if failed else "")
    )
    return "\n".join(lines)
