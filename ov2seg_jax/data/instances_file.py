"""What every training reader does with an instances json, whatever its owners are (images or
videos): read and check it, build the category table, group the annotations by owner, decide
which annotations are training tracks, and assemble the :class:`TrainDataset` at the end."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from ov2seg_jax.data.category_table import CategoryTable, category_table, frequency_weights
from ov2seg_jax.data.json_file import read_json
from ov2seg_jax.data.records import ProblemTally, TrainDataset, TrainRecord


@dataclasses.dataclass
class InstancesFile:
    """An annotation file being read: ``owner`` is "image" or "video" (the entries' list is
    ``data[owner + "s"]`` and an annotation points at one by ``owner + "_id"``)."""

    path: str
    owner: str
    data: dict
    table: CategoryTable
    index_of: dict[int, int]  # dataset category id -> contiguous index
    trained: list[bool]  # per contiguous category: kept for training (not a dropped partition)
    by_owner: dict  # owner id -> its annotations
    tally: ProblemTally

    @property
    def owners(self) -> list[dict]:
        return self.data[f"{self.owner}s"]


def open_instances(json_path: str, owner: str, drop_partitions: Sequence[str]) -> InstancesFile:
    """Read ``json_path``; its owner list, ``annotations`` and ``categories`` must be lists."""
    return instances_from_data(read_json(json_path), json_path, owner, drop_partitions)


def instances_from_data(
    data: dict, json_path: str, owner: str, drop_partitions: Sequence[str]
) -> InstancesFile:
    """:func:`open_instances` of a json already in memory (``json_path`` names it in errors)."""
    for key in (f"{owner}s", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{json_path}: field '{key}' is missing or not a list")
    table = category_table(data["categories"], json_path)
    by_owner: dict = {}
    for a in data["annotations"]:
        by_owner.setdefault(a.get(f"{owner}_id"), []).append(a)
    return InstancesFile(
        path=json_path,
        owner=owner,
        data=data,
        table=table,
        index_of=table.index_of,
        trained=[p not in drop_partitions for p in table.partition],
        by_owner=by_owner,
        tally=ProblemTally(),
    )


def track_category(f: InstancesFile, annotation: dict) -> int | None:
    """The contiguous category of a training annotation; None for crowd annotations, those of a
    dropped partition and (counted as a problem) those of an unknown category."""
    if annotation.get("iscrowd", 0):
        return None
    cid = annotation.get("category_id")
    index = f.index_of.get(cid)
    if index is None:
        f.tally.add("unknown_category", f"{f.path}: annotation {annotation.get('id')} -> {cid}")
        return None
    return index if f.trained[index] else None


def to_dataset(
    f: InstancesFile,
    records: Sequence[TrainRecord],
    image_root: str,
    owner_ids: set,
    *,
    name: str = "",
) -> TrainDataset:
    """The dataset of ``records``; annotations of owners not in ``owner_ids`` are counted."""
    orphans = sum(len(v) for k, v in f.by_owner.items() if k not in owner_ids)
    if orphans:
        f.tally.add(f"annotation_without_{f.owner}", f"{f.path}: {orphans} annotations")
    weights = frequency_weights(f.table, [r.categories for r in records], f.trained)
    return TrainDataset(
        name=name or os.path.basename(f.path),
        json_path=f.path,
        image_root=image_root,
        records=tuple(records),
        category_ids=f.table.ids,
        category_names=f.table.names,
        partition=f.table.partition,
        frequency_weight=tuple(float(x) for x in weights),
        is_video=f.owner == "video",
        problems=f.tally.as_dict(),
    )
