"""Submission archives for the evaluation servers of the test splits.

The LV-VIS test server (Codabench), YouTube-VIS 2019/2021 and OVIS (CodaLab) all take a zip with
``results.json`` at its top level: the video results list
``[{"video_id", "category_id", "score", "segmentations": [RLE or null per frame]}]``, as the LV-VIS
repository's ``YTVISEvaluator`` writes it. The results are checked first (field names, compressed
RLE, and with ``videos`` given, known video ids and one entry per frame), since the server only
says that a submission failed.

    python -m ov2seg_jax.evaluation.submission results.json --out submission.zip --videos test.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import zipfile
from typing import Any

from .errors import EvalInputError
from .json_input import JsonArrayStream, read_json

ARCNAME = "results.json"


def check_result(res: Any, where: str, source: str, lengths: dict[Any, int] | None) -> None:
    """Raise :class:`EvalInputError` unless ``res`` is a well-formed video result."""
    if not isinstance(res, dict):
        raise EvalInputError(source, where, "expected an object")
    for key in ("video_id", "category_id", "score", "segmentations"):
        if key not in res:
            raise EvalInputError(source, f"{where}.{key}", "missing")
    score = res["score"]
    if isinstance(score, bool) or not isinstance(score, int | float) or math.isnan(score):
        raise EvalInputError(source, f"{where}.score", f"expected a number, got {score!r}")
    segs = res["segmentations"]
    if not isinstance(segs, list):
        raise EvalInputError(source, f"{where}.segmentations", "expected a list")
    for t, seg in enumerate(segs):
        if seg is None:
            continue
        if not (
            isinstance(seg, dict)
            and isinstance(seg.get("counts"), str)
            and isinstance(seg.get("size"), list)
            and len(seg["size"]) == 2
        ):
            raise EvalInputError(
                source,
                f"{where}.segmentations[{t}]",
                "expected null or a compressed RLE {size: [h, w], counts: str}",
            )
    if lengths is not None:
        vid = res["video_id"]
        if vid not in lengths:
            raise EvalInputError(
                source, f"{where}.video_id", f"video id {vid!r} is not in the video list"
            )
        if lengths[vid] >= 0 and len(segs) != lengths[vid]:
            raise EvalInputError(
                source,
                f"{where}.segmentations",
                f"{len(segs)} frames, but video {vid} has {lengths[vid]}",
            )


def _video_lengths(videos: dict | str | os.PathLike) -> dict[Any, int]:
    source = "videos" if isinstance(videos, dict) else os.fspath(videos)
    data = videos if isinstance(videos, dict) else read_json(videos)
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        raise EvalInputError(source, "videos", "missing or not a list")
    out = {}
    for i, v in enumerate(data["videos"]):
        if not isinstance(v, dict) or "id" not in v:
            raise EvalInputError(source, f"videos[{i}].id", "missing")
        length = v.get(
            "length", len(v["file_names"]) if isinstance(v.get("file_names"), list) else -1
        )
        out[v["id"]] = length if isinstance(length, int) else -1
    return out


def write_submission(
    results: list | str | os.PathLike,
    zip_path: str | os.PathLike,
    *,
    videos: dict | str | os.PathLike | None = None,
) -> str:
    """Check ``results`` (a list or a results JSON file) and zip it as ``results.json``."""
    lengths = _video_lengths(videos) if videos is not None else None
    zip_path = os.fspath(zip_path)
    folder = os.path.dirname(os.path.abspath(zip_path))
    os.makedirs(folder, exist_ok=True)
    if isinstance(results, list):
        for i, res in enumerate(results):
            check_result(res, f"[{i}]", "results", lengths)
        payload = json.dumps(results, separators=(",", ":"))
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(ARCNAME, payload)
        return zip_path
    path = os.fspath(results)
    count = 0
    for count, (_, res) in enumerate(JsonArrayStream(path, path), start=1):
        check_result(res, f"[{count - 1}]", path, lengths)
    if count == 0:
        raise EvalInputError(path, None, "the results list is empty")
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(path, arcname=ARCNAME)
    return zip_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m ov2seg_jax.evaluation.submission",
        description="Zip video results for an evaluation server.",
    )
    p.add_argument("results", help="results JSON (a list)")
    p.add_argument("--out", required=True, help="zip to write")
    p.add_argument(
        "--videos", help="JSON with the split's 'videos' (ids and lengths) to check against"
    )
    args = p.parse_args(argv)
    try:
        write_submission(args.results, args.out, videos=args.videos)
    except EvalInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({ARCNAME} inside)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
