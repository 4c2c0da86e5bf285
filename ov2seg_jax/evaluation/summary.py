"""The 12 standard statistics (overall, base, novel) and how they are printed.

Each statistic is the plain mean of the entries > -1 of a slice of the precision (T x R x K) or
recall (T x K) array, as the official ``summarize()``; the base/novel slices index the category
axis with ``id - 1`` (LV-VIS), in the order the categories are listed in the GT file. The arrays
are laid out like the official ones, so each mean runs over the same sequence of numbers, and it
is summed the way the numpy of the reference runs summed it (:func:`official_mean`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .accumulate import Accumulated

STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)
AREA_LABELS = ("all", "small", "medium", "large")


@dataclass(frozen=True)
class StatSpec:
    """One summary line: AP or AR, at one IoU threshold (None = mean over all), area, maxDets."""

    ap: bool
    iou: float | None
    area: str
    max_dets: int


def stat_specs(max_dets: list[int]) -> list[StatSpec]:
    last = max_dets[-1]
    return [
        StatSpec(True, None, "all", last),
        StatSpec(True, 0.5, "all", last),
        StatSpec(True, 0.75, "all", last),
        StatSpec(True, None, "small", last),
        StatSpec(True, None, "medium", last),
        StatSpec(True, None, "large", last),
        StatSpec(False, None, "all", max_dets[0]),
        StatSpec(False, None, "all", max_dets[1]),
        StatSpec(False, None, "all", last),
        StatSpec(False, None, "small", last),
        StatSpec(False, None, "medium", last),
        StatSpec(False, None, "large", last),
    ]


def precision_combos(max_dets: list[int]) -> list[tuple[int, int]]:
    """(area index, maxDets index) pairs whose precision the summary reads."""
    return sorted(
        {
            (AREA_LABELS.index(s.area), max_dets.index(s.max_dets))
            for s in stat_specs(max_dets)
            if s.ap
        }
    )


NUMPY_BUFSIZE = 8192


def official_mean(values: np.ndarray) -> float:
    """``np.mean`` as numpy < 1.24 computes it (what the official numbers were made with).

    Its reductions ran through a buffer of 8192 elements: pairwise summation inside each block,
    blocks added left to right. Newer numpy sums long contiguous arrays in one pairwise pass,
    which can differ in the last bit.
    """
    total = 0.0
    for start in range(0, values.size, NUMPY_BUFSIZE):
        total += np.add.reduce(values[start : start + NUMPY_BUFSIZE])
    return float(total / values.size)


def _mean(s: np.ndarray) -> float:
    kept = s[s > -1]
    return official_mean(kept) if kept.size else -1.0


def summarize(
    acc: Accumulated,
    iou_thrs: np.ndarray,
    max_dets: list[int],
    base_ids: list[int] | None,
    novel_ids: list[int] | None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(stats, stats_base, stats_novel)``, 12 values each; base/novel None without partitions."""
    groups: list[list[int] | None] = [None, base_ids, novel_ids]
    out = [np.zeros(12) for _ in groups]
    for i, spec in enumerate(stat_specs(max_dets)):
        a = AREA_LABELS.index(spec.area)
        m = max_dets.index(spec.max_dets)
        s = acc.precision[a, m] if spec.ap else acc.recall[:, :, a, m]
        if spec.iou is not None:
            s = s[np.where(spec.iou == iou_thrs)[0]]
        for g, ids in enumerate(groups):
            if g == 0:
                out[g][i] = _mean(s)
            elif ids is not None:
                index = np.array(ids) - 1
                out[g][i] = _mean(s[:, :, index] if spec.ap else s[:, index])
    if base_ids is None:
        return out[0], None, None
    return out[0], out[1], out[2]


def official_lines(
    stats: np.ndarray,
    base: np.ndarray | None,
    novel: np.ndarray | None,
    iou_thrs: np.ndarray,
    max_dets: list[int],
) -> list[str]:
    """The summary as the LV-VIS evaluator prints it (36 lines; 12 without partitions)."""
    lines = []
    for i, spec in enumerate(stat_specs(max_dets)):
        title = "Average Precision" if spec.ap else "Average Recall"
        kind = "AP" if spec.ap else "AR"
        iou = f"{iou_thrs[0]:0.2f}:{iou_thrs[-1]:0.2f}" if spec.iou is None else f"{spec.iou:0.2f}"
        for suffix, values in (("", stats), ("b", base), ("n", novel)):
            if values is None:
                continue
            lines.append(
                f" {title:<18} {kind + suffix} @[ IoU={iou:<9} | area={spec.area:>6s} "
                f"| maxDets={spec.max_dets:>3d} ] = {values[i]:0.3f}"
            )
    return lines


def format_table(
    stats: np.ndarray,
    base: np.ndarray | None = None,
    novel: np.ndarray | None = None,
    title: str = "",
) -> str:
    """A compact table: one row per statistic, columns all / base / novel."""
    cols = [("all", stats)] + ([("base", base), ("novel", novel)] if base is not None else [])
    head = f"{'metric':<7}" + "".join(f"{name:>9}" for name, _ in cols)
    rows = [title] if title else []
    rows += [head, "-" * len(head)]
    for i, name in enumerate(STAT_NAMES):
        rows.append(f"{name:<7}" + "".join(f"{vals[i]:>9.3f}" for _, vals in cols))
    return "\n".join(rows)
