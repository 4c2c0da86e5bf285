"""What one video of a YouTube-VIS-format split becomes in a TFDS record, and back.

A record holds a whole video::

    video_id      int64               the json's video id
    file_names    Sequence(Text)      the frame names as the json lists them (relative paths)
    frames        Sequence(Image)     the frame files' bytes as they are on disk (JPEG), not
                                      re-encoded, so decoding gives the same pixels as the folder
    height, width int32               the annotated (original) frame size
    tracks        N tracks of the video, T = number of frames:
      id           (N,)      int64    annotation id
      category_id  (N,)      int64    dataset category id
      iscrowd      (N,)      int32
      rle          (N*T,)    string   compressed COCO RLE ``counts`` per frame, b"" where absent
      rle_size     (N*T, 2)  int32    the RLE's (height, width)
      area         (N*T,)    float64  the json's ``areas`` entry, -1 where it is null/absent

(the per-frame fields are track-major: entry ``j * T + t`` is track ``j`` in frame ``t``; TFDS
stores tensors with one unknown dimension without extra encoding).

The category table (``id``, ``name``, LV-VIS ``partition``, LVIS ``frequency``/``image_count``)
is the json's ``categories`` list, kept per split in the builder's metadata. Polygon and
uncompressed-RLE segmentations are stored as the compressed RLE they decode to.

:func:`video_examples` writes records from a json and an image folder; :func:`to_annotation_json`
rebuilds the json (without frames) from records, which the folder readers then parse as usual.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np
import tensorflow_datasets as tfds
from pycocotools import mask as mask_utils

from ov2seg_jax.data.masks import valid_polygons
from ov2seg_jax.data.video_json import frame_file_name

NO_AREA = -1.0


def video_features() -> tfds.features.FeaturesDict:
    """The features of every video builder in this package."""
    return tfds.features.FeaturesDict(
        {
            "video_id": np.int64,
            "file_names": tfds.features.Sequence(tfds.features.Text()),
            "frames": tfds.features.Sequence(tfds.features.Image(encoding_format="jpeg")),
            "height": np.int32,
            "width": np.int32,
            "tracks": {
                "id": tfds.features.Tensor(shape=(None,), dtype=np.int64),
                "category_id": tfds.features.Tensor(shape=(None,), dtype=np.int64),
                "iscrowd": tfds.features.Tensor(shape=(None,), dtype=np.int32),
                "rle": tfds.features.Tensor(shape=(None,), dtype=np.object_),
                "rle_size": tfds.features.Tensor(shape=(None, 2), dtype=np.int32),
                "area": tfds.features.Tensor(shape=(None,), dtype=np.float64),
            },
        }
    )


def compressed_rle(seg, height: int, width: int) -> dict | None:
    """A json segmentation as compressed RLE ``{size, counts: bytes}``; None when absent or when
    it cannot be read (no valid polygon, malformed RLE)."""
    if not seg:
        return None
    try:
        if isinstance(seg, dict):
            if isinstance(seg["counts"], list):
                h, w = (int(s) for s in seg["size"])
                return mask_utils.frPyObjects(seg, h, w)
            counts = seg["counts"]
            counts = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
            return {"size": [int(s) for s in seg["size"]], "counts": counts}
        if isinstance(seg, list):
            polys = valid_polygons(seg)
            if not polys:
                return None
            rles = mask_utils.frPyObjects([[float(v) for v in p] for p in polys], height, width)
            return mask_utils.merge(rles)
    except (TypeError, ValueError, KeyError, IndexError, OverflowError):
        return None
    return None


def _tracks(annotations: list[dict], num_frames: int, height: int, width: int) -> dict:
    # One segmentation per frame, as the readers require (others are skipped there too).
    annotations = [
        a
        for a in annotations
        if isinstance(a.get("segmentations"), list) and len(a["segmentations"]) == num_frames
    ]
    n = len(annotations)
    tracks = {
        "id": np.zeros(n, np.int64),
        "category_id": np.zeros(n, np.int64),
        "iscrowd": np.zeros(n, np.int32),
        "rle": np.full((n, num_frames), b"", dtype=object),
        "rle_size": np.zeros((n, num_frames, 2), np.int32),
        "area": np.full((n, num_frames), NO_AREA, np.float64),
    }
    for j, a in enumerate(annotations):
        tracks["id"][j] = int(a.get("id", -1))
        tracks["category_id"][j] = int(a.get("category_id", -1))
        tracks["iscrowd"][j] = int(a.get("iscrowd", 0))
        segs = a["segmentations"]
        areas = a.get("areas")
        areas = areas if isinstance(areas, list) else []
        for t in range(num_frames):
            rle = compressed_rle(segs[t], height, width)
            if rle is not None:
                tracks["rle"][j, t] = rle["counts"]
                tracks["rle_size"][j, t] = [int(s) for s in rle["size"]]
        for t in range(min(num_frames, len(areas))):
            if areas[t] is not None:
                tracks["area"][j, t] = float(areas[t])
    tracks["rle"] = tracks["rle"].reshape(-1)
    tracks["rle_size"] = tracks["rle_size"].reshape(-1, 2)
    tracks["area"] = tracks["area"].reshape(-1)
    return tracks


def video_examples(data: dict, image_root: str, json_path: str) -> Iterator[tuple[int, dict]]:
    """``(key, record)`` for every video of a YouTube-VIS-format json ``data``, in file order.

    A video whose frame file is missing raises FileNotFoundError naming the file. Annotations
    without one segmentation per frame are left out (the json readers skip them too).
    """
    by_video: dict = {}
    for a in data.get("annotations") or []:
        by_video.setdefault(a.get("video_id"), []).append(a)
    for i, v in enumerate(data["videos"]):
        missing = [k for k in ("id", "file_names", "height", "width") if k not in v]
        if missing:
            raise ValueError(f"{json_path}: videos[{i}] lacks {', '.join(missing)}")
        names = [str(p) for p in v["file_names"]]
        paths = [os.path.join(image_root, frame_file_name(p)) for p in names]
        for p in paths:
            if not os.path.isfile(p):
                raise FileNotFoundError(f"{json_path}: video {v['id']}: frame file {p} not found")
        h, w = int(v["height"]), int(v["width"])
        yield (
            i,
            {
                "video_id": int(v["id"]),
                "file_names": names,
                "frames": paths,
                "height": h,
                "width": w,
                "tracks": _tracks(by_video.get(v["id"], []), len(names), h, w),
            },
        )


def frame_uri(prefix: str, index: int, t: int) -> str:
    """The address of frame ``t`` of record ``index`` of an open split (see ``reader``)."""
    return f"{prefix}/{index}/{t}"


def to_annotation_json(
    records: Iterable[tuple[int, dict]],
    categories: list[dict],
    annotated: bool,
    frame_prefix: str,
) -> dict:
    """The YouTube-VIS-format json of ``(index, record)`` pairs (records without frames decoded).

    ``file_names`` become frame addresses ``<frame_prefix>/<index>/<t>`` (read back through
    :func:`ov2seg_jax.data.frame_files.open_frame`); ``annotated`` False leaves ``annotations``
    empty, as the json of a split without ground truth.
    """
    videos, annotations = [], []
    for index, r in records:
        vid = int(r["video_id"])
        names = list(r["file_names"])
        h, w = int(r["height"]), int(r["width"])
        videos.append(
            {
                "id": vid,
                "file_names": [frame_uri(frame_prefix, index, t) for t in range(len(names))],
                "height": h,
                "width": w,
                "length": len(names),
            }
        )
        tr, num_frames = r["tracks"], len(names)
        for j in range(len(tr["id"])):
            segs, areas = [], []
            for t in range(num_frames):
                k = j * num_frames + t
                counts = tr["rle"][k]
                counts = counts.decode("ascii") if isinstance(counts, bytes) else str(counts)
                size = [int(s) for s in tr["rle_size"][k]]
                segs.append({"size": size, "counts": counts} if counts else None)
                area = float(tr["area"][k])
                areas.append(
                    None if area == NO_AREA else (int(area) if area.is_integer() else area)
                )
            annotations.append(
                {
                    "id": int(tr["id"][j]),
                    "video_id": vid,
                    "category_id": int(tr["category_id"][j]),
                    "iscrowd": int(tr["iscrowd"][j]),
                    "segmentations": segs,
                    "areas": areas,
                    "height": h,
                    "width": w,
                    "length": len(names),
                }
            )
    return {
        "videos": videos,
        "categories": categories,
        "annotations": annotations if annotated else [],
    }
