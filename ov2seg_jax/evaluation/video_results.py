"""Video results: read, check, and reduce to what AP needs, in one pass and in parallel.

Each result is checked (ids, score, per-frame compressed RLE), its per-frame areas are computed
(``pycocotools.mask.area``), and it is reduced at once to a few numbers: video, category, score,
track area (mean of its non-zero frame areas, over *all* its frames, as the official ``loadRes``
does) and, when its (video, category) has GT, its IoU with each of those GT tracks
(:mod:`.track_iou`). The masks are then dropped, so memory stays small whatever the file size.

A results file is split by bytes into one range per process; every process but the first starts
at a guessed item boundary (:func:`.json_input.find_item_start`), and a guess is only used when the
process before it, reading from a trusted start, stopped at exactly that offset. Otherwise the rest
of the file is read again in this process, so the outcome never depends on the guess.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import EvalInputError
from .json_input import JsonArrayStream, find_item_start
from .track_iou import GtFrameTable, PairIoUs, PendingTrack, pair_ious
from .video_gt import VideoGroundTruth, rle_areas, size_codes

CHUNK_RESULTS = 256  # results whose areas are computed together
FLUSH_FRAMES = 60_000  # pending frames (with GT in their video and category) per IoU batch
PARALLEL_MIN_BYTES = 16 << 20


@dataclass(frozen=True)
class ResultOptions:
    """How strictly results are read (the defaults are the official evaluator's behaviour)."""

    on_unknown_category: str = "error"  # "error" | "drop" (official: dropped silently)
    frame_count: str = "zip"  # "zip" (official) | "error": lists must match lengths


class ResultItemError(Exception):
    """A bad result, located by its index within a part of the file."""

    def __init__(self, index: int, field: str, problem: str) -> None:
        super().__init__(index, field, problem)
        self.index, self.field, self.problem = index, field, problem


@dataclass
class ResultsPart:
    """The reduced results of one byte range (or of a whole in-memory list)."""

    video: np.ndarray
    category: np.ndarray  # category index, -1 for a dropped result
    score: np.ndarray
    avg_area: np.ndarray
    pairs: PairIoUs  # rows are indices within this part
    start_offset: int | None = None
    stop_offset: int | None = None
    length_mismatch: int = 0
    dropped: int = 0
    error: tuple[int, str, str] | None = None

    @property
    def count(self) -> int:
        return len(self.video)


class _PartReader:
    """Accumulates results one by one; areas in chunks, IoUs in batches."""

    def __init__(self, table: GtFrameTable, options: ResultOptions) -> None:
        self.gt: VideoGroundTruth = table.gt
        self.table = table
        self.options = options
        self.video: list[int] = []
        self.category: list[int] = []
        self.score: list[float] = []
        self.avg_area: list[np.ndarray] = []
        self.chunk: list[tuple[int, int, list]] = []  # (row, has-GT flag, segmentations)
        self.pending: list[PendingTrack] = []
        self.pending_frames = 0
        self.pairs: list[PairIoUs] = []
        self.length_mismatch = 0
        self.dropped = 0
        self._video_index = self.gt.video_index
        self._category_index = self.gt.category_index
        self._video_length = self.gt.video_length.tolist()
        self._pairs = set(self.gt.pair_tracks)

    # -- one result ---------------------------------------------------------------------------
    def add(self, obj: Any) -> None:
        row = len(self.video)
        try:
            video_id = obj["video_id"]
            cat_id = obj["category_id"]
            score = obj["score"]
            segs = obj["segmentations"]
        except (KeyError, TypeError):
            _missing_field(row, obj)
        vid = (
            self._video_index.get(video_id)
            if type(video_id) is int
            else _lookup(video_id, self._video_index)
        )
        if vid is None:
            raise ResultItemError(
                row,
                ".video_id",
                f"video id {video_id!r} is not in the ground "
                "truth (the official evaluator fails on this)",
            )
        cat = (
            self._category_index.get(cat_id)
            if type(cat_id) is int
            else _lookup(cat_id, self._category_index)
        )
        if cat is None:
            if self.options.on_unknown_category != "drop" or not _is_id(cat_id):
                raise ResultItemError(
                    row,
                    ".category_id",
                    f"category id {cat_id!r} is not in the "
                    "ground truth categories (--drop-unknown-categories drops "
                    "such results silently, as the official evaluator does)",
                )
            cat = -1
            self.dropped += 1
        if type(score) is not float and (
            isinstance(score, bool) or not isinstance(score, int | float)
        ):
            raise ResultItemError(row, ".score", f"expected a number, got {score!r}")
        if score != score:
            raise ResultItemError(row, ".score", "NaN")
        if type(segs) is not list:
            raise ResultItemError(
                row, ".segmentations", "expected a list with one RLE (or null) per frame"
            )
        length = self._video_length[vid]
        if length >= 0 and len(segs) != length:
            if self.options.frame_count == "error":
                raise ResultItemError(
                    row, ".segmentations", f"{len(segs)} frames, but video {video_id} has {length}"
                )
            self.length_mismatch += 1
        self.video.append(vid)
        self.category.append(cat)
        self.score.append(float(score))
        has_gt = (vid, cat) in self._pairs
        self.chunk.append((row, has_gt, segs))
        if len(self.chunk) >= CHUNK_RESULTS:
            self._process_chunk()

    # -- areas ----------------------------------------------------------------------------------
    def _process_chunk(self) -> None:
        chunk, self.chunk = self.chunk, []
        if not chunk:
            return
        flat = [s for _, _, segs in chunk for s in segs if s]
        n_present = np.array([len(segs) - segs.count(None) for _, _, segs in chunk])
        if n_present.sum() != len(flat):  # falsy entries other than null ({} or [] or 0)
            n_present = np.array([sum(1 for s in segs if s) for _, _, segs in chunk])
        n_present = n_present.astype(np.int64)
        first = np.r_[0, np.cumsum(n_present)]
        try:
            areas = rle_areas(flat, "", "")
        except EvalInputError:
            _locate_bad_mask(chunk)
            raise
        owner = np.repeat(np.arange(len(chunk)), n_present)
        positive = areas > 0
        sums = np.bincount(owner[positive], weights=areas[positive], minlength=len(chunk))
        counts = np.bincount(owner[positive], minlength=len(chunk))
        with np.errstate(invalid="ignore", divide="ignore"):
            self.avg_area.append(np.where(counts > 0, sums / np.maximum(counts, 1), 0.0))
        relevant = [k for k, item in enumerate(chunk) if item[1]]
        if relevant:
            self._queue_for_iou(
                [chunk[k] for k in relevant],
                [flat[first[k] : first[k + 1]] for k in relevant],
                areas,
                first[relevant],
            )
        if self.pending_frames >= FLUSH_FRAMES:
            self._flush()

    def _queue_for_iou(
        self,
        items: list[tuple[int, bool, list]],
        present: list[list],
        areas: np.ndarray,
        first: np.ndarray,
    ) -> None:
        """Keep the results whose (video, category) has GT until the next IoU batch."""
        lengths = np.array([len(segs) for _, _, segs in items], dtype=np.int64)
        flags = np.fromiter(
            (bool(s) for _, _, segs in items for s in segs), dtype=bool, count=int(lengths.sum())
        )
        counts = np.array([len(p) for p in present], dtype=np.int64)
        take = np.repeat(first - np.r_[0, np.cumsum(counts)[:-1]], counts) + np.arange(counts.sum())
        frame_area = np.zeros(flags.size, dtype=np.int64)
        frame_area[flags] = areas[take]
        frame_size = np.zeros(flags.size, dtype=np.int64)
        frame_size[flags] = size_codes([s for p in present for s in p])
        bounds = np.cumsum(lengths)[:-1]
        for (row, _, segs), area, mask, size in zip(
            items,
            np.split(frame_area, bounds),
            np.split(flags, bounds),
            np.split(frame_size, bounds),
            strict=True,
        ):
            self.pending.append(
                PendingTrack(row, self.video[row], self.category[row], segs, area, mask, size)
            )
        self.pending_frames += int(lengths.sum())

    def _flush(self) -> None:
        if self.pending:
            self.pairs.append(pair_ious(self.table, self.pending))
        self.pending, self.pending_frames = [], 0

    def finish(self) -> ResultsPart:
        self._process_chunk()
        self._flush()
        return ResultsPart(
            video=np.array(self.video, dtype=np.int32),
            category=np.array(self.category, dtype=np.int32),
            score=np.array(self.score, dtype=np.float64),
            avg_area=np.concatenate(self.avg_area) if self.avg_area else np.zeros(0),
            pairs=PairIoUs.concat(self.pairs),
            length_mismatch=self.length_mismatch,
            dropped=self.dropped,
        )


def _is_id(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _lookup(value: Any, index: dict[int, int]) -> int | None:
    """Index of an id given as a non-int JSON value (an integral float); None otherwise."""
    return index.get(value) if _is_id(value) else None


def _missing_field(row: int, obj: Any) -> None:
    if not isinstance(obj, dict):
        raise ResultItemError(row, "", f"expected an object, got {type(obj).__name__}")
    for key in ("video_id", "category_id", "score", "segmentations"):
        if key not in obj:
            raise ResultItemError(row, f".{key}", "missing")


def _locate_bad_mask(chunk: list[tuple[int, int, list]]) -> None:
    """Raise a :class:`ResultItemError` naming the first frame pycocotools cannot read."""
    for row, _, segs in chunk:
        for t, seg in enumerate(segs):
            if not seg:
                continue
            where = f".segmentations[{t}]"
            if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
                raise ResultItemError(
                    row, where, "expected a compressed RLE {size, counts} or null"
                )
            if isinstance(seg["counts"], list):
                raise ResultItemError(
                    row,
                    where,
                    "uncompressed RLE (counts as a list) is not "
                    "accepted in results (the official evaluator fails on it); "
                    "encode masks with pycocotools.mask.encode",
                )
            try:
                rle_areas([seg], "", "")
            except EvalInputError as err:
                raise ResultItemError(row, where, err.problem) from None


def read_part(
    items: Iterable[tuple[int, Any]], table: GtFrameTable, options: ResultOptions
) -> ResultsPart:
    """Reduce ``(offset, result)`` items; a bad one ends the part with ``error`` set."""
    reader = _PartReader(table, options)
    first: int | None = None
    try:
        for offset, obj in items:
            if first is None:
                first = offset
            reader.add(obj)
        part = reader.finish()
    except ResultItemError as err:
        part = _empty_part()
        part.error = (err.index, err.field, err.problem)
    part.start_offset = first
    return part


def _empty_part() -> ResultsPart:
    z = np.zeros(0)
    return ResultsPart(z.astype(np.int32), z.astype(np.int32), z, z, PairIoUs.empty())


def _looks_like_result(value: Any) -> bool:
    return isinstance(value, dict) and "video_id" in value and "segmentations" in value


def _read_file_part(
    path: str, source: str, begin: int, end: int | None, table: GtFrameTable, options: ResultOptions
) -> ResultsPart:
    stream = JsonArrayStream(path, source, begin, end)
    part = read_part(stream, table, options)
    part.stop_offset = stream.stop_offset
    if part.start_offset is None:
        part.start_offset = stream.stop_offset
    return part


def _child(conn: Any, args: tuple) -> None:
    try:
        conn.send(("ok", _read_file_part(*args)))
    except EvalInputError as err:
        conn.send(("input", str(err)))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises
        conn.send(("crash", traceback.format_exc()))
    finally:
        conn.close()


def _start_method() -> str:
    # forking a process that has started JAX's threads is unsafe; a fresh interpreter is not
    return "fork" if "jax" not in sys.modules and sys.platform == "linux" else "spawn"


@dataclass
class ReadResults:
    """All results of a file or list, in file order."""

    parts: list[ResultsPart] = field(default_factory=list)

    def concat(self) -> ResultsPart:
        offset = np.cumsum([0] + [p.count for p in self.parts])
        pairs = []
        for p, off in zip(self.parts, offset, strict=False):
            pairs.append(
                PairIoUs(p.pairs.row + off, p.pairs.track, p.pairs.iou, p.pairs.union_zero)
            )
        cat = lambda name: np.concatenate([getattr(p, name) for p in self.parts])  # noqa: E731
        return ResultsPart(
            video=cat("video"),
            category=cat("category"),
            score=cat("score"),
            avg_area=cat("avg_area"),
            pairs=PairIoUs.concat(pairs),
            length_mismatch=sum(p.length_mismatch for p in self.parts),
            dropped=sum(p.dropped for p in self.parts),
        )


def _raise_part_error(part: ResultsPart, first_index: int, source: str) -> None:
    if part.error is not None:
        index, sub, problem = part.error
        raise EvalInputError(source, f"[{first_index + index}]{sub}", problem)


def read_results(
    results: str | os.PathLike | list, table: GtFrameTable, options: ResultOptions, workers: int = 1
) -> ResultsPart:
    """Read a results file (or list) and reduce it; bad input raises :class:`EvalInputError`."""
    if isinstance(results, list):
        part = read_part(enumerate(results), table, options)
        _raise_part_error(part, 0, "results")
        return part
    path = os.fspath(results)
    if not os.path.isfile(path):
        raise EvalInputError(path, None, "no such file")
    size = os.path.getsize(path)
    workers = max(1, min(workers, size // PARALLEL_MIN_BYTES + 1))
    starts: list[int] = [0]
    for k in range(1, workers):
        guess = find_item_start(path, path, size * k // workers, _looks_like_result)
        if guess is not None and guess > starts[-1]:
            starts.append(guess)
    ends: list[int | None] = [*starts[1:], None]

    children = []
    ctx = multiprocessing.get_context(_start_method())
    try:
        for begin, end in zip(starts[1:], ends[1:], strict=True):
            recv, send = ctx.Pipe(duplex=False)
            args = (path, path, begin, end, table, options)
            proc = ctx.Process(target=_child, args=(send, args), daemon=True)
            proc.start()
            send.close()
            children.append((proc, recv))
        parts: list[ResultsPart | None] = [_read_file_part(path, path, 0, ends[0], table, options)]
        for proc, recv in children:
            try:
                status, payload = recv.recv()
            except EOFError:
                status, payload = "crash", None
            proc.join()
            # a failed worker's range is read again below, from a trusted boundary
            parts.append(payload if status == "ok" else None)
    finally:
        for proc, _ in children:
            if proc.is_alive():
                proc.terminate()
                proc.join()

    kept: list[ResultsPart] = []
    first_index = 0
    for k, part in enumerate(parts):
        trusted = k == 0 or (part is not None and kept[-1].stop_offset == starts[k])
        if not trusted:
            resume = kept[-1].stop_offset
            if resume is not None:
                part = _read_file_part(path, path, resume, None, table, options)
                _raise_part_error(part, first_index, path)
                kept.append(part)
            break
        assert part is not None
        _raise_part_error(part, first_index, path)
        kept.append(part)
        first_index += part.count
    merged = ReadResults(kept).concat()
    if merged.count == 0:
        raise EvalInputError(
            path, None, "the results list is empty (the official evaluator fails on this)"
        )
    return merged
