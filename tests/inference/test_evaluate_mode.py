"""--mode evaluate on a tiny split in the original's layout: results, resumption, the AP table."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from tests.inference.conftest import run_main

CFG = "configs/ov2seg_r50_lvvis.py"


def _make_split(root, frames):
    """Two videos of the clip's frames; GT: one track each, category 1 and 2; 40 categories."""
    videos, annotations = [], []
    t, h, w, _ = frames.shape
    for vid in (1, 2):
        names = []
        os.makedirs(root / "JPEGImages" / f"v{vid}", exist_ok=True)
        for i, f in enumerate(frames):
            name = f"v{vid}/{i:05d}.jpg"
            Image.fromarray(f).save(root / "JPEGImages" / name, quality=95)
            names.append(name)
        videos.append({"id": vid, "file_names": names, "height": h, "width": w, "length": t})
        mask = np.zeros((h, w), np.uint8)
        mask[10:40, 20:60] = 1
        rle = mask_util.encode(np.asfortranarray(mask))
        rle["counts"] = rle["counts"].decode()
        annotations.append(
            {
                "id": vid,
                "video_id": vid,
                "category_id": vid,
                "iscrowd": 0,
                "segmentations": [rle] * t,
                "areas": [int(mask.sum())] * t,
                "bboxes": [[20, 10, 40, 30]] * t,
                "height": h,
                "width": w,
                "length": t,
            }
        )
    cats = [{"id": i + 1, "name": f"class{i}", "partition": i % 4} for i in range(40)]
    path = root / "val_instances.json"
    path.write_text(json.dumps({"videos": videos, "annotations": annotations, "categories": cats}))
    return str(path)


@pytest.mark.slow
def test_evaluate_mode_is_resumable_and_scores(fixtures_root, small_model_dir, tmp_path):
    d = os.path.join(fixtures_root, "ov2seg_small")
    work = str(tmp_path / "work")
    gt = _make_split(tmp_path / "split", np.load(os.path.join(d, "clip.npz"))["frames"])
    common = [
        "--config",
        CFG,
        "--workdir",
        work,
        "--mode",
        "evaluate",
        f"--config.checkpoint.path={small_model_dir}",
        f"--config.evaluate.dataset_json={gt}",
        f"--config.evaluate.image_root={tmp_path / 'split' / 'JPEGImages'}",
        "--config.classifier.path=",
        "--config.inference.min_size_test=64",
    ]

    proc = run_main(*common, "--config.evaluate.max_videos=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    cache = os.path.join(work, "evaluate", "predictions.jsonl")
    first = open(cache).read().splitlines()
    assert len(first) == 1

    proc = run_main(*common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = open(cache).read().splitlines()
    assert len(lines) == 2 and lines[0] == first[0]  # video 1 was not redone
    results = json.load(open(os.path.join(work, "evaluate", "results.json")))
    assert {r["video_id"] for r in results} == {1, 2}
    assert all(len(r["segmentations"]) == 3 for r in results)
    stats = json.load(open(os.path.join(work, "evaluate", "stats.json")))
    assert len(stats["stats"]) == 12 and len(stats["stats_base"]) == 12
    assert all(-1.0 <= s <= 1.0 for s in stats["stats"])

    from ov2seg_jax.evaluation.video_ap import evaluate_video

    again = evaluate_video(gt, os.path.join(work, "evaluate", "results.json"))
    np.testing.assert_allclose(stats["stats"], again.stats)


def test_evaluate_mode_rejects_a_classifier_of_another_vocabulary(small_model_dir, tmp_path):
    gt = tmp_path / "gt.json"
    videos = [{"id": 1, "file_names": ["a.jpg"], "height": 4, "width": 4}]
    gt.write_text(json.dumps({"videos": videos, "categories": [{"id": 1, "name": "x"}]}))
    proc = run_main(
        "--config",
        CFG,
        "--workdir",
        str(tmp_path / "work"),
        "--mode",
        "evaluate",
        f"--config.checkpoint.path={small_model_dir}",
        f"--config.evaluate.dataset_json={gt}",
        "--config.classifier.path=",
    )
    assert proc.returncode == 2
    assert "40 rows" in proc.stderr and "1 categories" in proc.stderr


@pytest.mark.slow
def test_evaluate_mode_on_a_split_without_annotations_writes_a_submission(
    fixtures_root, small_model_dir, tmp_path
):
    gt = _make_split(
        tmp_path / "split",
        np.load(os.path.join(fixtures_root, "ov2seg_small", "clip.npz"))["frames"],
    )
    data = json.loads(open(gt).read())
    del data["annotations"]
    test_json = tmp_path / "split" / "test.json"
    test_json.write_text(json.dumps(data))
    work = tmp_path / "work"
    proc = run_main(
        "--config",
        CFG,
        "--workdir",
        str(work),
        "--mode",
        "evaluate",
        f"--config.checkpoint.path={small_model_dir}",
        f"--config.evaluate.dataset_json={test_json}",
        f"--config.evaluate.image_root={tmp_path / 'split' / 'JPEGImages'}",
        "--config.classifier.path=",
        "--config.inference.min_size_test=64",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with zipfile.ZipFile(work / "evaluate" / "submission.zip") as zf:
        assert zf.namelist() == ["results.json"]
        results = json.loads(zf.read("results.json"))
    assert {r["video_id"] for r in results} == {1, 2}
