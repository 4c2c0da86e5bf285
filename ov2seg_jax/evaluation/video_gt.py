"""LV-VIS / YouTube-VIS / OVIS video ground truth, read the way the official evaluator reads it.

What is kept and in which order matters for tie-breaking, so it follows the LV-VIS code
(``evaluate/lvvis.py`` + ``lvviseval.py``): evaluated videos are the sorted unique GT video ids,
evaluated categories the sorted unique category ids (annotated or not). Annotations are visited
video by video (sorted ids), in file order within a video, each looked up again by its ``id`` (so
of two annotations sharing an id the later one is used twice), and kept when their category is
known. A track's area is the mean of ``int(a)`` over its truthy ``areas`` entries (``ytvis``
semantics: no ``int()``), 0 when there is none.

Categories carry ``partition`` (0/1 base, 2/3 novel) in LV-VIS. YouTube-VIS and OVIS have none:
then only overall numbers exist. A file where some but not all categories have one is rejected,
as the official code fails on it.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from .errors import EvalInputError
from .json_input import read_json

SEMANTICS = ("lvvis", "ytvis")
AREA_BATCH = 255  # pycocotools.mask.area fails on longer lists under numpy 2


def rle_areas(rles: list[dict], source: str, field_name: str) -> np.ndarray:
    """Pixel counts of compressed RLEs (int64), in batches pycocotools accepts."""
    out = np.zeros(len(rles), dtype=np.int64)
    for i in range(0, len(rles), AREA_BATCH):
        try:
            out[i : i + AREA_BATCH] = mask_utils.area(rles[i : i + AREA_BATCH])
        except Exception as err:  # noqa: BLE001 - pycocotools raises bare TypeErrors/KeyErrors
            raise EvalInputError(source, field_name, f"not a valid RLE mask ({err!r})") from None
    return out


def size_codes(rles: list[dict]) -> np.ndarray:
    """One int64 per RLE that differs when the masks' (height, width) differ."""
    if not rles:
        return np.zeros(0, dtype=np.int64)
    hw = np.array([(r["size"][0], r["size"][1]) for r in rles], dtype=np.int64)
    return hw[:, 0] * (1 << 32) + hw[:, 1]


@dataclass
class VideoGroundTruth:
    """Everything the video evaluator needs from the ground truth, in official order."""

    source: str
    video_ids: np.ndarray  # sorted unique
    video_index: dict[int, int]
    video_length: np.ndarray  # frames per video (-1 when not given)
    category_ids: np.ndarray  # sorted unique
    category_index: dict[int, int]
    base_ids: list[int] | None  # in the file's category order; None: no partitions
    novel_ids: list[int] | None
    track_id: np.ndarray  # GT annotation id per track
    track_video: np.ndarray  # video index per track
    track_category: np.ndarray  # category index per track
    track_crowd: np.ndarray  # iscrowd (bool)
    track_area: np.ndarray  # mean area that decides the area range
    frame_rle: list[list[dict | None]]  # per track and frame: RLE, None when absent
    frame_area: list[np.ndarray]  # per track: pixel count per frame (0 if absent)
    frame_present: list[np.ndarray]  # per track: truthy entry per frame
    frame_size: list[np.ndarray]  # per track: size code per frame
    pair_tracks: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def has_partitions(self) -> bool:
        return self.base_ids is not None

    @property
    def num_videos(self) -> int:
        return len(self.video_ids)

    @property
    def num_categories(self) -> int:
        return len(self.category_ids)


def _need(obj: Any, key: str, source: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise EvalInputError(source, where, f"expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise EvalInputError(source, f"{where}.{key}", "missing")
    return obj[key]


def _as_int(value: Any, source: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise EvalInputError(source, where, f"expected an integer id, got {value!r}")
    return int(value)


def _video_length(video: dict) -> int:
    length = video.get("length")
    if isinstance(length, int) and not isinstance(length, bool):
        return length
    names = video.get("file_names")
    return len(names) if isinstance(names, list) else -1


def _partitions(cats: list[dict], source: str) -> tuple[list[int] | None, list[int] | None]:
    has = ["partition" in c for c in cats]
    if not any(has):
        return None, None
    if not all(has):
        i = has.index(False)
        raise EvalInputError(
            source,
            f"categories[{i}].partition",
            f"missing for category id {cats[i].get('id')!r} while other categories have one "
            "(the official LV-VIS evaluator fails on this)",
        )
    base = [c["id"] for c in cats if c["partition"] in (0, 1)]
    novel = [c["id"] for c in cats if c["partition"] in (2, 3)]
    return base, novel


def _check_split_indexing(
    base: list[int], novel: list[int], num_cats: int, source: str, warnings: list[str]
) -> None:
    """The official summary indexes the category axis with ``id - 1``; reject what breaks it."""
    for name, ids in (("base (partition 0/1)", base), ("novel (partition 2/3)", novel)):
        if not ids:
            raise EvalInputError(
                source,
                "categories",
                f"no {name} category; the official LV-VIS summary fails on an empty group",
            )
        bad = [i for i in ids if not -num_cats <= i - 1 < num_cats]
        if bad:
            raise EvalInputError(
                source,
                "categories",
                f"ids must be 1..K for the base/novel split (K={num_cats}, got id {bad[0]}); "
                "the official LV-VIS summary fails on this",
            )
    all_ids = sorted(set(base) | set(novel))
    if all_ids and all_ids[0] < 1:
        warnings.append(
            f"{source}: category ids start at {all_ids[0]}, not 1: the base/novel "
            "numbers are shifted by one category, as in the official evaluator"
        )


def _frame_rle(seg: Any, height: Any, width: Any, source: str, where: str) -> dict:
    """A truthy GT frame entry as compressed RLE (polygons and uncompressed RLE converted)."""
    if isinstance(seg, list):
        if height is None or width is None:
            raise EvalInputError(source, where, "polygon needs the video's height and width")
        try:
            return mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        except Exception as err:  # noqa: BLE001
            raise EvalInputError(source, where, f"not a valid polygon ({err!r})") from None
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        if isinstance(seg["counts"], list):
            if height is None or width is None:
                raise EvalInputError(source, where, "uncompressed RLE needs the video's size")
            try:
                return mask_utils.frPyObjects(seg, height, width)
            except Exception as err:  # noqa: BLE001
                raise EvalInputError(source, where, f"not a valid RLE ({err!r})") from None
        return seg
    raise EvalInputError(source, where, "expected a polygon list, an RLE {size, counts} or null")


def _track_area(areas: Any, semantics: str, source: str, where: str) -> float:
    if not isinstance(areas, list):
        raise EvalInputError(source, where, "expected a list with one area (or null) per frame")
    kept = [a for a in areas if a]
    if not kept:
        return 0.0
    try:
        values = [int(a) for a in kept] if semantics == "lvvis" else kept
        return float(np.array(values).mean())
    except (TypeError, ValueError) as err:
        raise EvalInputError(source, where, f"areas must be numbers or null ({err})") from None


def load_video_gt(
    gt: dict | str | os.PathLike, semantics: str = "lvvis", source: str | None = None
) -> VideoGroundTruth:
    """Read and check video ground truth (a path, or a parsed dict named ``source`` in errors)."""
    if semantics not in SEMANTICS:
        raise ValueError(f"semantics must be one of {SEMANTICS}, got {semantics!r}")
    if source is None:
        source = os.fspath(gt) if not isinstance(gt, dict) else "ground truth"
    data = read_json(gt) if not isinstance(gt, dict) else gt
    if not isinstance(data, dict):
        raise EvalInputError(
            source, None, "expected a JSON object with videos/categories/annotations"
        )
    for key in ("videos", "categories"):
        if not isinstance(data.get(key), list):
            raise EvalInputError(source, key, "missing or not a list")
    if not isinstance(data.get("annotations"), list):
        raise EvalInputError(
            source,
            "annotations",
            "missing or not a list (a test split has no ground truth to score against)",
        )
    warnings: list[str] = []

    videos: dict[int, dict] = {}
    for i, vid in enumerate(data["videos"]):
        videos[_as_int(_need(vid, "id", source, f"videos[{i}]"), source, f"videos[{i}].id")] = vid
    cats = data["categories"]
    cat_list = [
        _as_int(_need(c, "id", source, f"categories[{i}]"), source, f"categories[{i}].id")
        for i, c in enumerate(cats)
    ]
    video_ids = np.unique(np.array(list(videos), dtype=np.int64))
    category_ids = np.unique(np.array(cat_list, dtype=np.int64))
    video_index = {int(v): i for i, v in enumerate(video_ids)}
    video_length = np.array([_video_length(videos[int(v)]) for v in video_ids], dtype=np.int64)
    category_index = {int(c): i for i, c in enumerate(category_ids)}
    base, novel = _partitions(cats, source)
    if base is not None and novel is not None:
        _check_split_indexing(base, novel, len(category_ids), source, warnings)

    anns = data["annotations"]
    by_id: dict[Any, dict] = {}
    by_video: dict[Any, list[int]] = defaultdict(list)
    for i, ann in enumerate(anns):
        ann_id = _need(ann, "id", source, f"annotations[{i}]")
        by_video[_need(ann, "video_id", source, f"annotations[{i}]")].append(i)
        by_id[ann_id] = ann
    index_of = {id(a): i for i, a in enumerate(anns)}
    if len(by_id) < len(anns):
        warnings.append(
            f"{source}: annotation ids are not unique; as in the official evaluator, "
            "each id stands for the last annotation that has it"
        )

    kept: list[int] = []
    for vid in video_ids:
        for i in by_video.get(int(vid), []):
            ann = by_id[anns[i]["id"]]
            cat = _need(ann, "category_id", source, f"annotations[{index_of[id(ann)]}]")
            if cat in category_index and ann["video_id"] in video_index:
                kept.append(index_of[id(ann)])
    dropped = sum(1 for a in anns if a.get("category_id") not in category_index)
    if dropped:
        warnings.append(
            f"{source}: {dropped} annotation(s) with a category not in 'categories' "
            "are left out, as in the official evaluator"
        )

    n = len(kept)
    track_id = np.zeros(n, dtype=np.int64)
    track_video = np.zeros(n, dtype=np.int32)
    track_category = np.zeros(n, dtype=np.int32)
    track_crowd = np.zeros(n, dtype=bool)
    track_area = np.zeros(n, dtype=np.float64)
    frame_rle: list[list[dict | None]] = []
    flat: list[dict] = []
    flat_owner: list[tuple[int, int]] = []
    for t, i in enumerate(kept):
        ann = anns[i]
        where = f"annotations[{i}]"
        track_id[t] = _as_int(ann["id"], source, f"{where}.id")
        track_video[t] = video_index[ann["video_id"]]
        track_category[t] = category_index[ann["category_id"]]
        crowd = _need(ann, "iscrowd", source, where)
        try:
            track_crowd[t] = bool(int(crowd))
        except (TypeError, ValueError):
            raise EvalInputError(
                source, f"{where}.iscrowd", f"expected 0 or 1, got {crowd!r}"
            ) from None
        track_area[t] = _track_area(
            _need(ann, "areas", source, where), semantics, source, f"{where}.areas"
        )
        segs = _need(ann, "segmentations", source, where)
        if not isinstance(segs, list):
            raise EvalInputError(
                source, f"{where}.segmentations", "expected a list (one per frame)"
            )
        video = videos[ann["video_id"]]
        frames: list[dict | None] = []
        for f, seg in enumerate(segs):
            if not seg:
                frames.append(None)
                continue
            rle = _frame_rle(
                seg, video.get("height"), video.get("width"), source, f"{where}.segmentations[{f}]"
            )
            frames.append(rle)
            flat.append(rle)
            flat_owner.append((t, f))
        frame_rle.append(frames)

    areas = rle_areas(flat, source, "annotations[].segmentations")
    codes = size_codes(flat)
    frame_area = [np.zeros(len(fr), dtype=np.int64) for fr in frame_rle]
    frame_present = [np.array([r is not None for r in fr], dtype=bool) for fr in frame_rle]
    frame_size = [np.zeros(len(fr), dtype=np.int64) for fr in frame_rle]
    for k, (t, f) in enumerate(flat_owner):
        frame_area[t][f] = areas[k]
        frame_size[t][f] = codes[k]

    pair_tracks: dict[tuple[int, int], list[int]] = defaultdict(list)
    for t in range(n):
        pair_tracks[int(track_video[t]), int(track_category[t])].append(t)

    return VideoGroundTruth(
        source=source,
        video_ids=video_ids,
        video_index=video_index,
        video_length=video_length,
        category_ids=category_ids,
        category_index=category_index,
        base_ids=base,
        novel_ids=novel,
        track_id=track_id,
        track_video=track_video,
        track_category=track_category,
        track_crowd=track_crowd,
        track_area=track_area,
        frame_rle=frame_rle,
        frame_area=frame_area,
        frame_present=frame_present,
        frame_size=frame_size,
        pair_tracks=dict(pair_tracks),
        warnings=warnings,
    )
