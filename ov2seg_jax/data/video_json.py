"""Videos of a YouTube-VIS-format annotation file (LV-VIS, YouTube-VIS 2019/2021, OVIS).

The layout users have from the original, e.g. ``datasets/LVVIS/val/JPEGImages/<video>/*.jpg``
with ``datasets/LVVIS/val/val_instances.json``: the json lists ``videos`` (``id``, ``file_names``
relative to the image root, ``height``, ``width``) and ``categories`` (``id``, ``name``, and for
LV-VIS ``partition``); ``annotations`` are present for splits with ground truth.
"""

from __future__ import annotations

import dataclasses
import json
import os


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
    if not os.path.isfile(json_path):
        raise FileNotFoundError(f"annotation file not found: {json_path}")
    try:
        with open(json_path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{json_path} is not valid JSON: {e}") from e
    for key in ("videos", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{json_path}: field '{key}' is missing or not a list")
    videos = []
    for i, v in enumerate(data["videos"]):
        missing = [k for k in ("id", "file_names", "height", "width") if k not in v]
        if missing:
            raise ValueError(f"{json_path}: videos[{i}] lacks {', '.join(missing)}")
        paths = tuple(os.path.join(image_root, p) for p in v["file_names"])
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
