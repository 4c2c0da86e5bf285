"""Bad input gives one clear line and a non-zero exit; the CLI writes the documented JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ov2seg_jax.evaluation import STAT_NAMES, EvalInputError, evaluate_video
from ov2seg_jax.evaluation.__main__ import main

from .cases import EVAL_ROOT, eval_cases, load


def _cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("root,case", eval_cases("video_error"))
def test_official_crash_cases_fail_cleanly(
    root: str, case: dict, capsys: pytest.CaptureFixture
) -> None:
    gt, pred = os.path.join(root, case["gt"]), os.path.join(root, case["pred"])
    with pytest.raises(EvalInputError):
        evaluate_video(gt, pred)
    code, _, err = _cli(capsys, "--gt", gt, "--results", pred)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
    assert case["pred"].split("/")[-1] in lines[0] or case["gt"].split("/")[-1] in lines[0]


@pytest.fixture(scope="module")
def small_case() -> tuple[dict, list]:
    index = os.path.join(EVAL_ROOT, "index.json")
    if not os.path.isfile(index):
        pytest.skip("eval fixtures not found")
    return (
        load(EVAL_ROOT, "video/v_tiny/gt.json"),
        load(EVAL_ROOT, "video/v_tiny/jitter.pred.json"),
    )


def _write(tmp_path, name: str, data) -> str:
    path = os.path.join(tmp_path, name)
    with open(path, "w") as f:
        f.write(data if isinstance(data, str) else json.dumps(data))
    return path


def _bad_inputs(gt: dict, res: list) -> dict[str, tuple[object, object, str]]:
    """name -> (gt, results, text expected in the message)."""
    unknown_cat = [dict(res[0], category_id=999)] + res[1:]
    short = [dict(res[0], segmentations=res[0]["segmentations"][:-1])] + res[1:]
    no_score = [{k: v for k, v in res[0].items() if k != "score"}] + res[1:]
    bad_rle = [dict(res[0], segmentations=[[1, 2, 3]] + res[0]["segmentations"][1:])] + res[1:]
    gt_no_areas = json.loads(json.dumps(gt))
    del gt_no_areas["annotations"][0]["areas"]
    return {
        "malformed": (gt, '[{"video_id": 1,,}]', "malformed JSON"),
        "not_a_list": (gt, '{"a": 1}', "expected a JSON list"),
        "unknown_category": (gt, unknown_cat, "category id 999"),
        "missing_score": (gt, no_score, "[0].score: missing"),
        "polygon_result": (gt, bad_rle, "segmentations[0]"),
        "gt_without_areas": (gt_no_areas, res, "annotations[0].areas: missing"),
        "strict_frames": (gt, short, "frames, but video"),
    }


@pytest.mark.parametrize(
    "name",
    [
        "malformed",
        "not_a_list",
        "unknown_category",
        "missing_score",
        "polygon_result",
        "gt_without_areas",
        "strict_frames",
    ],
)
def test_bad_input_one_line(name: str, small_case, tmp_path, capsys) -> None:
    gt, res, text = _bad_inputs(*small_case)[name]
    gt_path, res_path = _write(tmp_path, "gt.json", gt), _write(tmp_path, "res.json", res)
    extra = ["--strict-frames"] if name == "strict_frames" else []
    code, _, err = _cli(capsys, "--gt", gt_path, "--results", res_path, *extra)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], err


def test_missing_file(capsys, tmp_path) -> None:
    code, _, err = _cli(capsys, "--gt", str(tmp_path / "nope.json"), "--results", "x.json")
    assert code == 2 and "nope.json: cannot read file" in err


def test_drop_unknown_categories_matches_official(small_case, tmp_path) -> None:
    gt, res = small_case
    extra = [dict(res[0], category_id=999, score=0.99)]
    with pytest.raises(EvalInputError, match="999"):
        evaluate_video(gt, res + extra)
    dropped = evaluate_video(gt, res + extra, on_unknown_category="drop")
    plain = evaluate_video(gt, res)
    np.testing.assert_array_equal(dropped.stats, plain.stats)
    assert any("dropped" in w for w in dropped.warnings)


@pytest.mark.parametrize("root,case", eval_cases("video")[:1])
def test_cli_subprocess_video(root: str, case: dict, tmp_path) -> None:
    out = tmp_path / "stats.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ov2seg_jax.evaluation",
            "--gt",
            os.path.join(root, case["gt"]),
            "--results",
            os.path.join(root, case["pred"]),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "AP50" in proc.stdout
    stats = json.loads(out.read_text())
    assert set(stats) == {"stats", "stats_base", "stats_novel"}
    expected = load(root, case["expected"])["official"]
    for key in stats:
        assert len(stats[key]) == 12
        np.testing.assert_allclose(stats[key], [expected[key][n] for n in STAT_NAMES], atol=1e-12)


@pytest.mark.parametrize("root,case", eval_cases("image")[:1])
def test_cli_image(root: str, case: dict, tmp_path, capsys) -> None:
    out = tmp_path / "stats.json"
    code, text, _ = _cli(
        capsys,
        "--gt",
        os.path.join(root, case["gt"]),
        "--results",
        os.path.join(root, case["pred"]),
        "--out",
        str(out),
    )
    assert code == 0 and "LVIS" in text
    stats = json.loads(out.read_text())
    assert len(stats["lvis"]) == 13 and len(stats["coco"]) == 12


def test_ytvis_style_gt_without_partitions(small_case, tmp_path, capsys) -> None:
    gt, res = small_case
    gt = json.loads(json.dumps(gt))
    for cat in gt["categories"]:
        del cat["partition"]
    r = evaluate_video(gt, res)
    assert r.stats_base is None and r.stats_novel is None
    code, _, _ = _cli(
        capsys,
        "--gt",
        _write(tmp_path, "gt.json", gt),
        "--results",
        _write(tmp_path, "res.json", res),
        "--out",
        str(tmp_path / "s.json"),
    )
    saved = json.loads((tmp_path / "s.json").read_text())
    assert code == 0 and len(saved["stats"]) == 12
    assert saved["stats_base"] == [-1.0] * 12 and saved["stats_novel"] == [-1.0] * 12
    np.testing.assert_array_equal(saved["stats"], evaluate_video(small_case[0], res).stats)
