"""Video prediction: frame reading, the windowed predictor against the original, the CLI modes."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from ov2seg_jax.inference.frames import read_frame_folder, resized_shape
from ov2seg_jax.inference.predictor import VideoPredictor
from ov2seg_jax.parity.model_fixture import FixtureModel
from tests.inference.conftest import run_main


def _write_frames(folder, frames):
    os.makedirs(folder, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(os.path.join(folder, f"{i:05d}.png"))


@pytest.fixture(scope="module")
def small(fixtures_root):
    jax.config.update("jax_default_matmul_precision", "highest")
    d = os.path.join(fixtures_root, "ov2seg_small")
    return d, FixtureModel(d)


@pytest.mark.slow
def test_predictor_reproduces_the_original_on_two_windows(small):
    """12 frames = windows of 10 and 2 (the short one padded): instances as the original's."""
    d, fm = small
    frames = np.load(os.path.join(d, "long_clip.npz"))["frames"]
    ref = np.load(os.path.join(d, "long_instances.npz"))
    pred = VideoPredictor(
        fm.model,
        fm.converted.variables,
        fm.converted.classifier,
        window_size=10,
        top_k=int(ref["scores"].shape[0]),
        size_divisibility=32,
    )
    out = pred.predict(frames, output_size=tuple(int(x) for x in ref["output_size"]))
    ours = {
        (int(q), int(lab)): i
        for i, (q, lab) in enumerate(zip(out.query_index, out.labels, strict=True))
    }
    theirs = {
        (int(q), int(lab)): i
        for i, (q, lab) in enumerate(zip(ref["query_index"], ref["labels"], strict=True))
    }
    assert ours.keys() == theirs.keys()
    order = [ours[k] for k in theirs]
    np.testing.assert_allclose(out.scores[order], ref["scores"], atol=1e-5)
    shape = tuple(ref["masks_final_shape"])
    want = np.unpackbits(ref["masks_final"], axis=-1)[..., : shape[-1]].astype(bool)
    differ = np.mean(out.masks[order] != want)
    assert differ <= 1e-4, differ
    # Sorted by descending score.
    assert np.all(np.diff(out.scores) <= 0)


def test_resized_shape_matches_detectron2():
    assert resized_shape(720, 1280, 480, 1333) == (480, 853)
    assert resized_shape(1280, 720, 480, 1333) == (853, 480)
    assert resized_shape(100, 1000, 480, 1333) == (133, 1333)


def test_frame_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_frame_folder(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        read_frame_folder(str(empty))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "00000.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match="cannot read image .*00000.jpg"):
        read_frame_folder(str(bad))
    mixed = tmp_path / "mixed"
    _write_frames(str(mixed), [np.zeros((8, 8, 3), np.uint8)])
    Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(mixed / "00001.png")
    with pytest.raises(ValueError, match="all frames must match"):
        read_frame_folder(str(mixed))


def test_frame_folder_resizes_short_side(tmp_path):
    _write_frames(
        str(tmp_path), np.random.default_rng(0).integers(0, 255, (2, 60, 90, 3), np.uint8)
    )
    frames, original, names = read_frame_folder(str(tmp_path), min_size=40)
    assert frames.shape == (2, 40, 60, 3)
    assert original == (60, 90)
    assert names == ["00000.png", "00001.png"]


@pytest.mark.slow
def test_convert_then_predict_from_the_command_line(fixtures_root, tmp_path):
    d = os.path.join(fixtures_root, "ov2seg_small")
    work = str(tmp_path / "work")
    cfg = "configs/ov2seg_r50_lvvis.py"
    proc = run_main(
        "--config",
        cfg,
        "--workdir",
        work,
        "--mode",
        "convert",
        f"--config.convert.source={d}/model_small.pth",
        "--config.convert.infer_architecture=True",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.path.isdir(os.path.join(work, "checkpoint", "variables"))

    frames_dir = str(tmp_path / "frames")
    clip = np.load(os.path.join(d, "clip.npz"))
    _write_frames(frames_dir, clip["frames"])
    proc = run_main(
        "--config",
        cfg,
        "--workdir",
        work,
        "--mode",
        "predict",
        f"--config.predict.input={frames_dir}",
        "--config.classifier.path=",
        "--config.inference.min_size_test=64",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.load(open(os.path.join(work, "predict", "results.json")))
    assert len(results) == 50
    for r in results:
        assert 1 <= r["category_id"] <= 40 and 0.0 <= r["score"] <= 1.0
        assert len(r["segmentations"]) == 3
        assert mask_util.decode(r["segmentations"][0]).shape == (64, 96)
    assert "score" in proc.stdout and "first" in proc.stdout

    # A classifier of the wrong width is refused with a message naming the file and shapes.
    bad = tmp_path / "bad_classifier.npy"
    np.save(bad, np.zeros((3, 300), np.float32))
    proc = run_main(
        "--config",
        cfg,
        "--workdir",
        work,
        "--mode",
        "predict",
        f"--config.predict.input={frames_dir}",
        f"--config.classifier.path={bad}",
    )
    assert proc.returncode == 2
    assert "bad_classifier.npy has shape (3, 300)" in proc.stderr
    assert "Traceback" not in proc.stderr

    # An empty frame folder too.
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_main(
        "--config",
        cfg,
        "--workdir",
        work,
        "--mode",
        "predict",
        f"--config.predict.input={empty}",
        "--config.classifier.path=",
    )
    assert proc.returncode == 2 and "holds no images" in proc.stderr


def test_convert_reports_a_mismatched_checkpoint(fixtures_root, tmp_path):
    d = os.path.join(fixtures_root, "ov2seg_small")
    proc = run_main(
        "--config",
        "configs/ov2seg_r50_lvvis.py",
        "--workdir",
        str(tmp_path),
        "--mode",
        "convert",
        f"--config.convert.source={d}/model_small.pth",
    )
    assert proc.returncode == 2
    assert "does not match the model of this config" in proc.stderr
    assert "Traceback" not in proc.stderr
