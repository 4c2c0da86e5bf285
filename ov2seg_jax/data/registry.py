"""Datasets by name: where each lives under a root folder (the original's ``datasets/`` layout).

``lvvis_format`` is the generic entry for any folder in the LV-VIS layout
(``<root>/<split>/JPEGImages/<video>/<frame>.jpg`` and ``<root>/<split>/<split>_instances.json``),
which is how the built-in synthetic dataset is written. ``tfds:<name>[/<config>]:<split>`` names
a split prepared with the TFDS builders of :mod:`ov2seg_jax.data.tfds` (``root`` is then the
TFDS data dir).
"""

from __future__ import annotations

import dataclasses
import functools
import os

from ov2seg_jax.data.lvis import load_image_dataset
from ov2seg_jax.data.records import TrainDataset
from ov2seg_jax.data.video_json import load_video_train_dataset


@dataclasses.dataclass(frozen=True)
class DatasetEntry:
    """``kind``: "image" (LVIS/COCO json) or "video" (YouTube-VIS-format json).

    ``fallback_json``: read instead when ``json`` is absent, with ``drop_partitions`` applied
    (``lvis_v1_train_norare`` derived from ``lvis_v1_train.json`` on the fly).
    """

    kind: str
    image_root: str
    json: str
    drop_partitions: tuple[str, ...] = ()
    fallback_json: str = ""


_NOVEL = ("novel",)

DATASETS: dict[str, DatasetEntry] = {
    "lvis_v1_train": DatasetEntry("image", "coco", "lvis/lvis_v1_train.json"),
    "lvis_v1_train_norare": DatasetEntry(
        "image", "coco", "lvis/lvis_v1_train_norare.json", _NOVEL, "lvis/lvis_v1_train.json"
    ),
    "lvis_v1_val": DatasetEntry("image", "coco", "lvis/lvis_v1_val.json"),
    "lvvis_train": DatasetEntry(
        "video", "LVVIS/train/JPEGImages", "LVVIS/train/train_instances.json"
    ),
    "lvvis_val": DatasetEntry("video", "LVVIS/val/JPEGImages", "LVVIS/val/val_instances.json"),
    "ytvis_2019_train": DatasetEntry(
        "video", "ytvis_2019/train/JPEGImages", "ytvis_2019/train.json"
    ),
    "ytvis_2019_val": DatasetEntry("video", "ytvis_2019/valid/JPEGImages", "ytvis_2019/valid.json"),
    "ytvis_2021_train": DatasetEntry(
        "video", "ytvis_2021/train/JPEGImages", "ytvis_2021/train.json"
    ),
    "ytvis_2021_val": DatasetEntry("video", "ytvis_2021/valid/JPEGImages", "ytvis_2021/valid.json"),
    # The original registers only the OVIS validation split; train follows the same naming.
    "ovis_train": DatasetEntry("video", "OVIS/train", "OVIS/annotation_train.json"),
    "ovis_val": DatasetEntry("video", "OVIS/valid", "OVIS/annotation_valid.json"),
}

LVVIS_FORMAT = "lvvis_format"
TFDS_PREFIX = "tfds:"  # tfds:<name>[/<config>]:<split>, read by ov2seg_jax.data.tfds.reader


def resolve(name: str, root: str, split: str = "train") -> DatasetEntry:
    """The entry of ``name`` with paths joined to ``root`` (``split`` only for lvvis_format)."""
    if name == LVVIS_FORMAT:
        return DatasetEntry(
            "video",
            os.path.join(root, split, "JPEGImages"),
            os.path.join(root, split, f"{split}_instances.json"),
        )
    if name not in DATASETS:
        known = ", ".join(sorted([*DATASETS, LVVIS_FORMAT]))
        raise KeyError(f"unknown dataset {name!r}; known: {known}")
    e = DATASETS[name]
    return DatasetEntry(
        e.kind,
        os.path.join(root, e.image_root),
        os.path.join(root, e.json),
        e.drop_partitions,
        os.path.join(root, e.fallback_json) if e.fallback_json else "",
    )


@functools.lru_cache(maxsize=4)
def _load(name: str, root: str, split: str, base_only: bool, mtime: float) -> TrainDataset:
    del mtime  # part of the cache key only: a rewritten json is read again
    e = resolve(name, root, split)
    json_path = e.json
    if not os.path.isfile(json_path) and e.fallback_json and os.path.isfile(e.fallback_json):
        json_path = e.fallback_json
    drop = tuple(sorted(set(e.drop_partitions) | ({"novel"} if base_only else set())))
    label = name if name != LVVIS_FORMAT else f"{root}:{split}"
    if e.kind == "image":
        return load_image_dataset(json_path, e.image_root, name=label, drop_partitions=drop)
    return load_video_train_dataset(json_path, e.image_root, name=label, drop_partitions=drop)


def load_dataset(
    name: str, root: str, split: str = "train", base_only: bool = False
) -> TrainDataset:
    """Read (once per process) the training records of a registered dataset.

    ``base_only`` also drops novel-category annotations (implied by ``lvis_v1_train_norare``).
    A name ``tfds:<name>[/<config>]:<split>`` reads a prepared TFDS split instead, with ``root``
    its data dir ("" : TFDS's default) and ``split`` unused (the name carries it).
    """
    if name.startswith(TFDS_PREFIX):
        from ov2seg_jax.data.tfds import reader

        return reader.load_train_dataset(name, root, ("novel",) if base_only else ())
    e = resolve(name, root, split)
    path = e.json if os.path.isfile(e.json) or not e.fallback_json else e.fallback_json
    mtime = os.path.getmtime(path) if os.path.isfile(path) else -1.0
    return _load(name, os.path.abspath(root), split, bool(base_only), mtime)
