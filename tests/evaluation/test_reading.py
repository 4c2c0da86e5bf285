"""Streaming JSON, the split of a results file over processes, and the submission zip."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from ov2seg_jax.evaluation import EvalInputError, evaluate_video, video_results, write_submission
from ov2seg_jax.evaluation.json_input import JsonArrayStream, find_item_start

from .cases import EVAL_ROOT, load


def _stream(tmp_path, text: str, chunk: int = 5) -> list:
    path = tmp_path / "a.json"
    path.write_text(text)
    return [v for _, v in JsonArrayStream(str(path), "a.json", chunk_bytes=chunk)]


@pytest.mark.parametrize("chunk", [1, 3, 16, 1 << 20])
def test_stream_any_chunk_size(tmp_path, chunk: int) -> None:
    items = [{"video_id": i, "s": "x" * i, "score": 0.1234567891234 * i} for i in range(30)]
    assert _stream(tmp_path, json.dumps(items, indent=1), chunk) == items
    assert _stream(tmp_path, " [ ] ", chunk) == []


@pytest.mark.parametrize(
    "text,problem",
    [
        ("[1,2,]", "trailing comma"),
        ("[1 2]", "expected ','"),
        ("[1,2", "missing ']'"),
        ("{}", "expected a JSON list"),
        ("[1]x", "extra data"),
        ('[{"a": "b]', "Unterminated"),
    ],
)
def test_stream_errors(tmp_path, text: str, problem: str) -> None:
    with pytest.raises(EvalInputError, match="malformed JSON at byte"):
        try:
            _stream(tmp_path, text)
        except EvalInputError as err:
            assert problem in str(err)
            raise


def test_split_boundary_guess(tmp_path) -> None:
    items = [{"video_id": i, "segmentations": [{"size": [1, 1], "counts": "0"}]} for i in range(50)]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(items))
    mid = path.stat().st_size // 2
    looks = lambda v: isinstance(v, dict) and "video_id" in v  # noqa: E731
    start = find_item_start(str(path), "r", mid, looks)
    first = JsonArrayStream(str(path), "r", 0, start)
    head = [v for _, v in first]
    tail = [v for _, v in JsonArrayStream(str(path), "r", start)]
    assert first.stop_offset == start and head + tail == items


@pytest.fixture(scope="module")
def case() -> tuple[str, list]:
    if not os.path.isdir(EVAL_ROOT):
        pytest.skip("eval fixtures not found")
    return (
        os.path.join(EVAL_ROOT, "video/v_edge/gt.json"),
        load(EVAL_ROOT, "video/v_edge/realistic_mix.pred.json"),
    )


@pytest.mark.parametrize("decoy", [False, True])
def test_parallel_read_matches_serial(case, tmp_path, monkeypatch, decoy: bool) -> None:
    gt, res = case
    res = [dict(r) for r in res]
    if decoy:  # text that looks like a result inside a string, all over the file
        fake = json.dumps({"video_id": res[0]["video_id"], "segmentations": []})
        for r in res:
            r["note"] = fake * 3
    path = tmp_path / "res.json"
    path.write_text(json.dumps(res))
    monkeypatch.setattr(video_results, "PARALLEL_MIN_BYTES", 1)
    serial = evaluate_video(gt, str(path), workers=1)
    for workers in (2, 3):
        par = evaluate_video(gt, str(path), workers=workers)
        np.testing.assert_array_equal(par.stats, serial.stats)
        np.testing.assert_array_equal(par.stats_novel, serial.stats_novel)
        assert par.mask_size_warnings == serial.mask_size_warnings


def test_parallel_read_reports_first_bad_item(case, tmp_path, monkeypatch) -> None:
    gt, res = case
    res = [dict(r) for r in res]
    res[-3]["score"] = "high"
    path = tmp_path / "res.json"
    path.write_text(json.dumps(res))
    monkeypatch.setattr(video_results, "PARALLEL_MIN_BYTES", 1)
    with pytest.raises(EvalInputError, match=rf"\[{len(res) - 3}\]\.score"):
        evaluate_video(gt, str(path), workers=2)


def test_submission_zip(case, tmp_path) -> None:
    gt, res = case
    out = write_submission(res, tmp_path / "sub.zip", videos=gt)
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == ["results.json"]
        assert json.loads(zf.read("results.json")) == res
    path = tmp_path / "res.json"
    path.write_text(json.dumps(res))
    with zipfile.ZipFile(write_submission(str(path), tmp_path / "b.zip")) as zf:
        assert json.loads(zf.read("results.json")) == res
    bad = [dict(res[0], segmentations=res[0]["segmentations"][:-1])]
    with pytest.raises(EvalInputError, match="frames"):
        write_submission(bad, tmp_path / "c.zip", videos=gt)
