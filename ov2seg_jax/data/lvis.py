"""LVIS v1 (and COCO-format) image annotation files as training records.

The layout users have from the original: ``datasets/lvis/lvis_v1_{train,val}.json`` with images
under ``datasets/coco/{train2017,val2017}``. An image's path is the json's ``file_name`` (a
``COCO_*`` name keeps its last 16 characters) or else ``coco_url`` without its
``http://images.cocodataset.org/`` prefix, joined to the image root, as the original builds it.

``lvis_v1_train_norare`` is the train file with every annotation of a rare (``frequency == "r"``)
category removed and the category list untouched, so contiguous indices stay ``id - 1`` over all
1203 categories (the rows of ``fg_bg_5_10_lvis_ens.npy``). Crowd annotations are skipped and
images left without annotations are dropped (the original's ``FILTER_EMPTY_ANNOTATIONS``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ov2seg_jax.data.instances_file import open_instances, to_dataset, track_category
from ov2seg_jax.data.records import InstanceTrack, TrainDataset, TrainRecord

_COCO_URL_PREFIX_LEN = len("http://images.cocodataset.org/")


def image_file_name(image: dict) -> str | None:
    """The path of an image entry relative to the image root (None when it names no file)."""
    name = image.get("file_name")
    if name:
        return name[-16:] if name.startswith("COCO") else name
    url = image.get("coco_url")
    if url:
        return url[_COCO_URL_PREFIX_LEN:]
    return None


def load_image_dataset(
    json_path: str,
    image_root: str,
    *,
    name: str = "",
    drop_partitions: Sequence[str] = (),
    keep_empty: bool = False,
) -> TrainDataset:
    """Read an LVIS/COCO-format instances file into records (one frame each).

    ``drop_partitions=("novel",)`` removes the annotations of novel (LVIS: rare) categories, which
    is the ``norare`` split. Bad entries are skipped and counted in ``TrainDataset.problems``.
    """
    f = open_instances(json_path, "image", drop_partitions)
    image_ids = set()
    records = []
    for i, img in enumerate(sorted(f.owners, key=lambda m: m.get("id", -1))):
        missing = [k for k in ("id", "height", "width") if k not in img]
        rel = image_file_name(img)
        if missing or rel is None:
            what = ", ".join(missing) if missing else "file_name/coco_url"
            f.tally.add("bad_image_entry", f"{json_path}: images[{i}] lacks {what}")
            continue
        image_id = int(img["id"])
        image_ids.add(image_id)
        h, w = int(img["height"]), int(img["width"])
        tracks = []
        for a in f.by_owner.get(image_id, []):
            c = track_category(f, a)
            if c is None:
                continue
            seg = a.get("segmentation")
            if not seg:
                f.tally.add("no_segmentation", f"{json_path}: annotation {a.get('id')}")
                continue
            tracks.append(InstanceTrack(c, (seg,)))
        if not tracks and not keep_empty:
            f.tally.counts["image_without_annotations"] += 1  # expected (norare), not a warning
            continue
        path = os.path.join(image_root, rel)
        records.append(TrainRecord(image_id, (path,), h, w, tuple(tracks)))
    return to_dataset(f, records, image_root, image_ids, name=name)
