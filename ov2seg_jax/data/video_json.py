"""Videos of a YouTube-VIS-format annotation file (LV-VIS, YouTube-VIS 2019/2021, OVIS).

The layout users have from the original, e.g. ``datasets/LVVIS/val/JPEGImages/<video>/*.jpg``
with ``datasets/LVVIS/val/val_instances.json``: the json lists ``videos`` (``id``, ``file_names``
relative to the image root, ``height``, ``width``) and ``categories`` (``id``, ``name``, and for
LV-VIS ``partition``); ``annotations`` are present for splits with ground truth.

:func:`load_video_dataset` lists the videos for prediction and evaluation;
:func:`load_video_train_dataset` reads the annotated tracks as training records.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from ov2seg_jax.data.instances_file import instances_from_data, to_dataset, track_category
from ov2seg_jax.data.json_file import read_json
from ov2seg_jax.data.records import InstanceTrack, TrainDataset, TrainRecord


@dataclasses.dataclass(frozen=True)
class VideoRecord:
    video_id: int
    frame_paths: tuple[str, ...]
    height: int
    width: int


@dataclasses.dataclass(frozen=True)
class VideoDataset:
    json_path: str
    image_root: str
    videos: tuple[VideoRecord, ...]
    category_ids: tuple[int, ...]  # dataset id of each classifier row, in id order
    category_names: tuple[str, ...]
    has_annotations: bool


def load_video_dataset(json_path: str, image_root: str) -> VideoDataset:
    """Read the video list; every field the predictor needs is checked, naming the file and entry."""
    return video_dataset_from_data(read_json(json_path), json_path, image_root)


def video_dataset_from_data(data: dict, json_path: str, image_root: str) -> VideoDataset:
    """:func:`load_video_dataset` of a json already in memory (``json_path`` names it)."""
    for key in ("videos", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{json_path}: field '{key}' is missing or not a list")
    videos = []
    for i, v in enumerate(data["videos"]):
        missing = [k for k in ("id", "file_names", "height", "width") if k not in v]
        if missing:
            raise ValueError(f"{json_path}: videos[{i}] lacks {', '.join(missing)}")
        paths = tuple(os.path.join(image_root, frame_file_name(p)) for p in v["file_names"])
        if not paths:
            raise ValueError(f"{json_path}: video {v['id']} has no file_names")
        videos.append(VideoRecord(int(v["id"]), paths, int(v["height"]), int(v["width"])))
    cats = sorted(data["categories"], key=lambda c: c["id"])
    return VideoDataset(
        json_path,
        image_root,
        tuple(videos),
        tuple(int(c["id"]) for c in cats),
        tuple(str(c.get("name", c["id"])) for c in cats),
        bool(data.get("annotations")),
    )


def frame_file_name(name: str) -> str:
    """A frame path relative to the image root; Windows separators as some LV-VIS files have them.

    The original keeps the last two backslash-separated parts (``<video>\\<frame>.jpg``).
    """
    if "\\" in name:
        return "/".join(name.split("\\")[-2:])
    return name


def load_video_train_dataset(
    json_path: str,
    image_root: str,
    *,
    name: str = "",
    drop_partitions: Sequence[str] = (),
) -> TrainDataset:
    """A YouTube-VIS-format file with annotations (LV-VIS, YouTube-VIS, OVIS) as training records.

    An annotation is a track: ``video_id``, ``category_id`` and ``segmentations`` (one RLE, polygon
    list or null per frame). Crowd tracks and tracks of dropped partitions are left out; tracks of
    unknown categories or videos, videos without frames and videos left without annotations are
    skipped and counted in ``TrainDataset.problems``.
    """
    return video_train_dataset_from_data(
        read_json(json_path), json_path, image_root, name=name, drop_partitions=drop_partitions
    )


def video_train_dataset_from_data(
    data: dict,
    json_path: str,
    image_root: str,
    *,
    name: str = "",
    drop_partitions: Sequence[str] = (),
) -> TrainDataset:
    """:func:`load_video_train_dataset` of a json already in memory (``json_path`` names it)."""
    f = instances_from_data(data, json_path, "video", drop_partitions)
    records = []
    video_ids = set()
    for i, v in enumerate(sorted(f.owners, key=lambda m: m.get("id", -1))):
        missing = [k for k in ("id", "file_names", "height", "width") if k not in v]
        if missing:
            f.tally.add("bad_video_entry", f"{json_path}: videos[{i}] lacks {', '.join(missing)}")
            continue
        vid = int(v["id"])
        video_ids.add(vid)
        paths = tuple(os.path.join(image_root, frame_file_name(p)) for p in v["file_names"])
        if not paths:
            f.tally.add("empty_video", f"{json_path}: video {vid} has no file_names")
            continue
        tracks = []
        for a in f.by_owner.get(vid, []):
            c = track_category(f, a)
            if c is None:
                continue
            segs = a.get("segmentations")
            if not isinstance(segs, list) or len(segs) != len(paths):
                f.tally.add(
                    "bad_segmentations",
                    f"{json_path}: annotation {a.get('id')} needs one segmentation per frame "
                    f"({len(paths)})",
                )
                continue
            segs = tuple(s if s else None for s in segs)
            if all(s is None for s in segs):
                f.tally.add("empty_track", f"{json_path}: annotation {a.get('id')}")
                continue
            tracks.append(InstanceTrack(c, segs))
        if not tracks:
            f.tally.counts["video_without_annotations"] += 1
            continue
        records.append(TrainRecord(vid, paths, int(v["height"]), int(v["width"]), tuple(tracks)))
    return to_dataset(f, records, image_root, video_ids, name=name)
