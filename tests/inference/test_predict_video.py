"""--mode predict on user videos: a video file or a frame folder, any vocabulary, every output
checked against the model run in-process; bad input fails cleanly and writes nothing."""

from __future__ import annotations

import json
import os

import imageio.v3 as iio
import jax
import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from configs import tiny
from ov2seg_jax import checkpoint, modes
from ov2seg_jax.convert.convert_ov2seg import abstract_variables
from ov2seg_jax.data.synthetic import SyntheticSpec, build_synthetic_dataset, category_names
from ov2seg_jax.inference.predictor import VideoPredictor
from ov2seg_jax.inference.video_source import network_frames, open_video
from ov2seg_jax.models.ov2seg import build_model
from ov2seg_jax.vocabulary import SINGLE_TEMPLATE, build_text_classifier
from ov2seg_jax.vocabulary.compositional import encode_names
from tests.inference.conftest import run_main

MIN_SIZE = 64  # frames are resized so the short side is 64 (48x64 -> 64x85, padded 64x96)


def _video_frames(t: int = 9, h: int = 48, w: int = 64) -> np.ndarray:
    """Two coloured squares moving over a noisy background."""
    rng = np.random.default_rng(3)
    frames = rng.integers(20, 80, (t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i, 6:22, 3 + 3 * i : 19 + 3 * i] = (220, 40, 40)
        frames[i, 28:44, 40 - 2 * i : 56 - 2 * i] = (40, 60, 220)
    return frames


def _batch_reference(model_dir: str, classifier: np.ndarray, input_path: str):
    """The batch predictor on the same decoded frames: what the outputs must hold."""
    jax.config.update("jax_default_matmul_precision", "highest")
    cfg = tiny.get_config()
    variables = checkpoint.load_model(model_dir, abstract_variables(cfg.model))
    predictor = VideoPredictor(
        build_model(cfg.model),
        variables,
        classifier,
        window_size=cfg.inference.window_size,
        top_k=cfg.inference.top_k,
        size_divisibility=cfg.inference.size_divisibility,
    )
    source = open_video(input_path)
    frames = np.stack(list(network_frames(source, MIN_SIZE, 1333)))
    return predictor.predict(frames, output_size=source.size), source


def _check_results(out_dir: str, ref, num_frames: int, size: tuple[int, int]):
    results = json.load(open(os.path.join(out_dir, "results.json")))
    assert len(results) == len(ref.scores) == 10
    for r, score, label, masks in zip(results, ref.scores, ref.labels, ref.masks, strict=True):
        assert r["video_id"] == 0 and r["category_id"] == int(label) + 1
        assert r["score"] == pytest.approx(float(score), rel=1e-6)
        assert len(r["segmentations"]) == num_frames
        for t, seg in enumerate(r["segmentations"]):
            if seg is None:  # null exactly where the model's mask is empty
                assert not masks[t].any()
            else:
                assert seg["size"] == list(size)
                np.testing.assert_array_equal(mask_util.decode(seg).astype(bool), masks[t])
    return results


@pytest.mark.slow
def test_predict_a_video_file_with_clip_names(tiny_model_dir, tiny_clip_dir, tmp_path):
    video = str(tmp_path / "clip.mp4")
    iio.imwrite(video, _video_frames(), plugin="pyav", codec="libx264", fps=8)
    out_dir = str(tmp_path / "out")
    cache = str(tmp_path / "cache")
    proc = run_main(
        "--config=configs/tiny.py",
        f"--workdir={tmp_path / 'work'}",
        "--mode=predict",
        f"--config.checkpoint.path={tiny_model_dir}",
        f"--config.predict.input={video}",
        f"--config.predict.output={out_dir}",
        "--config.predict.vocabulary=cat,dog,skate_board",
        "--config.predict.score_threshold=0",
        f"--config.vocabulary.clip_model={tiny_clip_dir}",
        "--config.vocabulary.templates=single",
        f"--config.vocabulary.cache_dir={cache}",
        f"--config.inference.min_size_test={MIN_SIZE}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = ["cat", "dog", "skate board"]
    classifier = build_text_classifier(names, tiny_clip_dir, SINGLE_TEMPLATE, cache_dir=cache)
    ref, source = _batch_reference(tiny_model_dir, classifier, video)
    results = _check_results(out_dir, ref, 9, source.size)

    cats = json.load(open(os.path.join(out_dir, "categories.json")))
    assert cats == [{"id": i + 1, "name": n} for i, n in enumerate(names)]
    # The printed table: a header and one row per instance, with the class names.
    table = open(os.path.join(out_dir, "tracks.txt")).read()
    assert table.strip() in proc.stdout
    rows = table.strip().splitlines()
    assert rows[0].split() == ["id", "class", "score", "first", "last"] and len(rows) == 11
    top = results[0]
    present = [t for t, s in enumerate(top["segmentations"]) if s is not None]
    first, last = (present[0], present[-1]) if present else (-1, -1)
    assert rows[1].split()[-2:] == [str(first), str(last)]
    assert names[top["category_id"] - 1] in rows[1]
    # A playable overlay of the video's size and length, at its frame rate.
    overlay = os.path.join(out_dir, "overlay.mp4")
    back = np.stack(list(iio.imiter(overlay, plugin="pyav")))
    assert back.shape == (9, 48 * 8, 64 * 8, 3)  # small videos are drawn 8x larger
    assert iio.immeta(overlay, plugin="pyav")["fps"] == pytest.approx(8.0)


def _config(tiny_model_dir: str, input_path: str, out_dir: str, **predict):
    cfg = tiny.get_config()
    cfg.checkpoint.path = tiny_model_dir
    cfg.inference.min_size_test = MIN_SIZE
    cfg.predict.input = input_path
    cfg.predict.output = out_dir
    cfg.predict.score_threshold = 0.0
    cfg.predict.update(predict)
    return cfg


def test_predict_a_frame_folder_with_a_classifier_file(tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(_video_frames(6)):
        Image.fromarray(f).save(folder / f"{i:04d}.png")
    classifier = np.random.default_rng(0).standard_normal((3, 32)).astype(np.float32)
    classifier /= np.linalg.norm(classifier, axis=1, keepdims=True)
    np.save(tmp_path / "mine.npy", classifier)
    (tmp_path / "mine.txt").write_text("red box\nblue box\nbackground_thing\n")
    out_dir = str(tmp_path / "out")
    cfg = _config(
        tiny_model_dir, str(folder), out_dir, vocabulary=str(tmp_path / "mine.npy"), overlay="gif"
    )
    modes.run_predict(cfg, str(tmp_path / "work"))
    ref, source = _batch_reference(tiny_model_dir, classifier, str(folder))
    _check_results(out_dir, ref, 6, (48, 64))
    names = [c["name"] for c in json.load(open(os.path.join(out_dir, "categories.json")))]
    assert names == ["red box", "blue box", "background thing"]
    back = np.stack(list(iio.imiter(os.path.join(out_dir, "overlay.gif"), plugin="pyav")))
    assert back.shape == (6, 48 * 8, 64 * 8, 3)
    assert "first" in capsys.readouterr().out


def test_predict_a_synthetic_video_with_compositional_names(tiny_model_dir, tmp_path):
    """The built-in data's route: a folder of JPEG frames, its categories as a names file, the
    compositional text encoder (no weights needed), a gif overlay."""
    spec = SyntheticSpec(
        num_train_videos=0, num_val_videos=1, num_frames=5, height=48, width=64, text_dim=32
    )
    paths = build_synthetic_dataset(str(tmp_path / "data"), spec)
    video = os.path.join(paths["val_images"], sorted(os.listdir(paths["val_images"]))[0])
    out_dir = str(tmp_path / "out")
    cfg = _config(tiny_model_dir, video, out_dir, vocabulary=paths["categories_txt"])
    cfg.predict.overlay = "gif"
    cfg.vocabulary.encoder = "compositional"
    modes.run_predict(cfg, str(tmp_path / "work"))
    names = category_names()
    ref, _ = _batch_reference(tiny_model_dir, encode_names(names, dim=32), video)
    _check_results(out_dir, ref, 5, (48, 64))
    cats = json.load(open(os.path.join(out_dir, "categories.json")))
    assert [c["name"] for c in cats] == names and len(names) == 64
    back = np.stack(list(iio.imiter(os.path.join(out_dir, "overlay.gif"), plugin="pyav")))
    assert back.shape == (5, 48 * 8, 64 * 8, 3)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unreadable video", "cannot decode video .*broken.mp4"),
        ("empty video", "empty.mp4: the file is empty"),
        ("zero-length vocabulary", "empty"),
        ("duplicate names", "duplicates entry 0"),
        (
            "classifier of the wrong width",
            r"wrong.npy has shape \(3, 16\); .*\(num_classes >= 1, 32\)",
        ),
        ("frame smaller than the stride", "24x16 .* smaller than the network stride 32"),
        ("bad overlay format", "predict.overlay must be"),
        ("broken frame part-way", "cannot read image .*0005.png"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(tiny_model_dir, tmp_path, case, message):
    video = str(tmp_path / "clip.mp4")
    iio.imwrite(video, _video_frames(3), plugin="pyav", codec="libx264", fps=8)
    out_dir = str(tmp_path / "out")
    good = str(tmp_path / "good.npy")
    np.save(good, np.eye(3, 32, dtype=np.float32))
    cfg = _config(tiny_model_dir, video, out_dir, vocabulary=good)
    if case == "unreadable video":
        (tmp_path / "broken.mp4").write_bytes(b"\x00\x01 definitely not a video" * 40)
        cfg.predict.input = str(tmp_path / "broken.mp4")
    elif case == "empty video":
        (tmp_path / "empty.mp4").write_bytes(b"")
        cfg.predict.input = str(tmp_path / "empty.mp4")
    elif case == "zero-length vocabulary":
        (tmp_path / "names.txt").write_text("# nothing here\n\n")
        cfg.predict.vocabulary = str(tmp_path / "names.txt")
    elif case == "duplicate names":
        cfg.predict.vocabulary = "cat,dog,Cat"
    elif case == "classifier of the wrong width":
        np.save(tmp_path / "wrong.npy", np.ones((3, 16), np.float32))
        cfg.predict.vocabulary = str(tmp_path / "wrong.npy")
    elif case == "frame smaller than the stride":
        iio.imwrite(video, _video_frames(3, 16, 24), plugin="pyav", codec="libx264", fps=8)
        cfg.inference.min_size_test = 0  # keep the stored 16x24
    elif case == "bad overlay format":
        cfg.predict.overlay = "avi"
    elif case == "broken frame part-way":  # found while predicting, after the first window
        folder = tmp_path / "frames"
        folder.mkdir()
        for i, f in enumerate(_video_frames(6)):
            Image.fromarray(f).save(folder / f"{i:04d}.png")
        (folder / "0005.png").write_bytes(b"truncated")
        cfg.predict.input = str(folder)
    with pytest.raises(modes.UserError, match=message):
        modes.run_predict(cfg, str(tmp_path / "work"))
    assert not os.path.exists(out_dir)


def test_cli_reports_bad_input_without_a_traceback(tiny_model_dir, tmp_path):
    proc = run_main(
        "--config=configs/tiny.py",
        f"--workdir={tmp_path}",
        "--mode=predict",
        f"--config.checkpoint.path={tiny_model_dir}",
        f"--config.predict.input={tmp_path / 'nothing.mp4'}",
        "--config.predict.vocabulary=cat,dog",
    )
    assert proc.returncode == 2
    assert "input not found" in proc.stderr and "nothing.mp4" in proc.stderr
    assert "Traceback" not in proc.stderr
