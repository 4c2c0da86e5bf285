"""The category table of an annotation file: contiguous indices, names, base/novel partition.

Contiguous index = position in the categories sorted by dataset id, which is the order of the
classifier rows the original ships (LVIS: id - 1 over 1203 ids; LV-VIS: 1196 sorted ids).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

# LV-VIS integer partition codes (what its evaluator reads): 0/1 base, 2/3 novel.
_NOVEL_CODES = (2, 3)


def partition_of(category: dict) -> str:
    """ "base" or "novel" from LV-VIS ``partition`` (int code or string) or LVIS ``frequency``."""
    part = category.get("partition")
    if isinstance(part, str):
        return "novel" if part.lower() == "novel" else "base"
    if part is not None:
        return "novel" if int(part) in _NOVEL_CODES else "base"
    if category.get("frequency") == "r":
        return "novel"
    return "base"


@dataclasses.dataclass(frozen=True)
class CategoryTable:
    ids: tuple[int, ...]
    names: tuple[str, ...]
    partition: tuple[str, ...]
    image_counts: (
        tuple[int, ...] | None
    )  # from the json (LVIS ``image_count``), if every entry has it

    @property
    def index_of(self) -> dict[int, int]:
        return {cid: i for i, cid in enumerate(self.ids)}


def category_table(categories: Sequence[dict], json_path: str) -> CategoryTable:
    """Sort by id and check the entries, naming the file and entry at fault."""
    for i, c in enumerate(categories):
        if not isinstance(c, dict) or "id" not in c:
            raise ValueError(f"{json_path}: categories[{i}] has no 'id'")
    cats = sorted(categories, key=lambda c: int(c["id"]))
    ids = tuple(int(c["id"]) for c in cats)
    if len(set(ids)) != len(ids):
        raise ValueError(f"{json_path}: duplicate category ids")
    counts = None
    if cats and all("image_count" in c for c in cats):
        counts = tuple(int(c["image_count"]) for c in cats)
    return CategoryTable(
        ids=ids,
        names=tuple(str(c.get("name", c["id"])) for c in cats),
        partition=tuple(partition_of(c) for c in cats),
        image_counts=counts,
    )


def frequency_weights(
    table: CategoryTable, record_categories: Sequence[frozenset[int]], trained: Sequence[bool]
) -> np.ndarray:
    """Federated-loss class weights: image count ** 0.5, 0 for categories not trained on.

    The counts are the json's ``image_count`` when it has them (the original reads them from
    ``lvis_v1_train_cat_info.json``, same numbers), else the number of records showing the class.
    """
    if table.image_counts is not None:
        counts = np.asarray(table.image_counts, np.float64)
    else:
        counts = np.zeros(len(table.ids), np.float64)
        for cats in record_categories:
            for c in cats:
                counts[c] += 1
    counts = np.where(np.asarray(trained, bool), counts, 0.0)
    return (counts**0.5).astype(np.float32)
