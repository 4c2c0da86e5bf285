"""The benchmark vocabularies that ship with the original: a dataset name -> names + classifier.

``lvvis``, ``ytvis19``, ``ytvis21``, ``ovis``, ``coco`` and ``lvis`` each name the precomputed
classifier ``fg_bg_5_10_<name>_ens.npy`` of the metadata folder
(:func:`ov2seg_jax.parity.paths.metadata_dir`) and the dataset's category names in row order
(row ``i`` is category id ``i + 1``). LV-VIS names come from ``lvvis_categories.json`` and LVIS
names from ``lvis_v1_train_cat_info.json`` in the metadata folder; the four short lists live in
:mod:`ov2seg_jax.vocabulary.dataset_names`.
"""

from __future__ import annotations

import json
import os

from ov2seg_jax.parity.paths import metadata_dir
from ov2seg_jax.vocabulary.dataset_names import COCO_NAMES, OVIS_NAMES, YTVIS19_NAMES, YTVIS21_NAMES

SHIPPED_DATASETS = ("lvvis", "ytvis19", "ytvis21", "ovis", "coco", "lvis")

_IN_PACKAGE = {
    "ytvis19": YTVIS19_NAMES,
    "ytvis21": YTVIS21_NAMES,
    "ovis": OVIS_NAMES,
    "coco": COCO_NAMES,
}
_IN_METADATA = {"lvvis": "lvvis_categories.json", "lvis": "lvis_v1_train_cat_info.json"}


def classifier_file(dataset: str) -> str:
    """File name of a shipped dataset's classifier, e.g. ``fg_bg_5_10_lvvis_ens.npy``."""
    return f"fg_bg_5_10_{dataset}_ens.npy"


def dataset_of_classifier(path: str) -> str | None:
    """The shipped dataset whose classifier file ``path`` is named after, else None."""
    base = os.path.basename(path)
    for dataset in SHIPPED_DATASETS:
        if base == classifier_file(dataset):
            return dataset
    return None


def _names_from_categories(path: str) -> list[str]:
    """Names of a ``[{"id", "name", ...}]`` category list, ordered by id (ids must be 1..C)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"category list {path} not found (set OV2SEG_METADATA to the metadata folder)"
        )
    with open(path, encoding="utf-8") as f:
        categories = json.load(f)
    categories = sorted(categories, key=lambda c: int(c["id"]))
    ids = [int(c["id"]) for c in categories]
    if ids != list(range(1, len(ids) + 1)):
        raise ValueError(f"{path}: category ids must be 1..{len(ids)} without gaps")
    return [str(c["name"]) for c in categories]


def dataset_names(dataset: str) -> list[str]:
    """The raw category names of a shipped dataset in classifier row order."""
    key = dataset.lower()
    if key in _IN_PACKAGE:
        return list(_IN_PACKAGE[key])
    if key in _IN_METADATA:
        return _names_from_categories(os.path.join(metadata_dir(), _IN_METADATA[key]))
    raise KeyError(
        f"unknown dataset {dataset!r}; shipped vocabularies: {', '.join(SHIPPED_DATASETS)}"
    )


def dataset_classifier_path(dataset: str) -> str:
    """Path of a shipped dataset's classifier in the metadata folder (checked to exist)."""
    key = dataset.lower()
    if key not in SHIPPED_DATASETS:
        raise KeyError(
            f"unknown dataset {dataset!r}; shipped vocabularies: {', '.join(SHIPPED_DATASETS)}"
        )
    path = os.path.join(metadata_dir(), classifier_file(key))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"the {key} classifier {path} is not there (set OV2SEG_METADATA to the folder holding "
            "the original's datasets/metadata files)"
        )
    return path
