"""Prediction and evaluation where ``import torch`` fails: a ``sitecustomize`` on the child's
path sets ``sys.modules["torch"] = None``, so importing torch raises and transformers sees no
torch. Predict (names vocabulary through the Flax CLIP encoder, from an export) and evaluate
(from a converted checkpoint; from the export it gives the same results) must run; converting a .pth must say which extra to install."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from ov2seg_jax import modes
from ov2seg_jax.vocabulary import SINGLE_TEMPLATE, build_text_classifier
from tests.export.conftest import MIN_SIZE, write_frames
from tests.inference.conftest import ROOT, write_tiny_clip

NAMES = ["cat", "dog", "bird"]


@pytest.fixture(scope="module")
def no_torch(tmp_path_factory):
    """A function running ``python ARGS`` in the torch-less environment."""
    blocker = tmp_path_factory.mktemp("no_torch")
    (blocker / "sitecustomize.py").write_text(
        'import sys\nsys.modules["torch"] = None  # "import torch" raises ImportError\n'
    )
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}", "TF_CPP_MIN_LOG_LEVEL": "2"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=900
        )

    probe = run("-c", "import transformers; print(transformers.is_torch_available()); import torch")
    assert probe.returncode == 1 and "ModuleNotFoundError" in probe.stderr, probe.stderr[-2000:]
    assert probe.stdout.strip() == "False"
    return run


@pytest.mark.slow
def test_predict_with_names_from_an_export_without_torch(exported, no_torch, tmp_path):
    root, cfg, _, _ = exported
    pytest.importorskip("torch")  # this process writes the tiny CLIP and the reference
    clip = write_tiny_clip(str(tmp_path / "clip"), projection_dim=32)
    frames = write_frames(tmp_path / "frames")
    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = no_torch(
        "-m",
        "ov2seg_jax.main",
        "--config=configs/tiny.py",
        f"--workdir={tmp_path / 'work'}",
        "--mode=predict",
        f"--config.inference.export={cfg.export.output}",
        f"--config.inference.min_size_test={MIN_SIZE}",
        f"--config.predict.input={frames}",
        f"--config.predict.output={out}",
        f"--config.predict.vocabulary={','.join(NAMES)}",
        "--config.predict.overlay=none",
        "--config.predict.score_threshold=0",
        f"--config.vocabulary.clip_model={clip}",
        "--config.vocabulary.templates=single",
        f"--config.vocabulary.cache_dir={cache}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The Flax encoder's classifier (cached by the child) equals the PyTorch encoder's.
    want = build_text_classifier(NAMES, clip, SINGLE_TEMPLATE, use_cache=False, encoder="torch")
    (cached,) = cache.glob("*.npy")
    np.testing.assert_allclose(np.load(cached), want, atol=1e-5, rtol=0)
    # And the results equal the live model's with that classifier.
    np.save(tmp_path / "torch_vocab.npy", want)
    ref = cfg.copy_and_resolve_references()
    ref.predict.update(
        input=frames,
        output=str(tmp_path / "ref"),
        vocabulary=str(tmp_path / "torch_vocab.npy"),
        overlay="none",
        score_threshold=0.0,
    )
    modes.run_predict(ref, str(tmp_path / "work_ref"))
    got = json.load(open(out / "results.json"))
    expected = json.load(open(tmp_path / "ref" / "results.json"))
    assert len(got) == len(expected) == 10
    for g, e in zip(got, expected, strict=True):
        assert g["score"] == pytest.approx(e["score"], rel=1e-4, abs=1e-6)
        assert g["category_id"] == e["category_id"]
        assert g["segmentations"] == e["segmentations"]
    assert [c["name"] for c in json.load(open(out / "categories.json"))] == NAMES


def _split(root) -> str:
    """Two 3-frame 48x64 videos with one track each, three categories."""
    rng = np.random.default_rng(0)
    videos, annotations = [], []
    for vid in (1, 2):
        names = []
        os.makedirs(root / "JPEGImages" / f"v{vid}", exist_ok=True)
        for i in range(3):
            name = f"v{vid}/{i:05d}.jpg"
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), np.uint8)).save(
                root / "JPEGImages" / name
            )
            names.append(name)
        videos.append({"id": vid, "file_names": names, "height": 48, "width": 64, "length": 3})
        mask = np.zeros((48, 64), np.uint8)
        mask[10:30, 20:50] = 1
        box = mask_util.encode(np.asfortranarray(mask))
        box["counts"] = box["counts"].decode()
        annotations.append(
            {
                "id": vid,
                "video_id": vid,
                "category_id": vid,
                "iscrowd": 0,
                "segmentations": [box] * 3,
                "areas": [600] * 3,
                "bboxes": [[20, 10, 30, 20]] * 3,
                "height": 48,
                "width": 64,
                "length": 3,
            }
        )
    cats = [{"id": i + 1, "name": n, "partition": i % 4} for i, n in enumerate(NAMES)]
    path = root / "val_instances.json"
    path.write_text(json.dumps({"videos": videos, "annotations": annotations, "categories": cats}))
    return str(path)


@pytest.mark.slow
def test_evaluate_and_convert_without_torch(exported, no_torch, tmp_path):
    root, cfg, _, _ = exported
    gt = _split(tmp_path / "split")
    work = tmp_path / "work"
    proc = no_torch(
        "-m",
        "ov2seg_jax.main",
        "--config=configs/tiny.py",
        f"--workdir={work}",
        "--mode=evaluate",
        f"--config.checkpoint.path={cfg.checkpoint.path}",
        f"--config.classifier.path={root / 'vocab.npy'}",
        f"--config.inference.min_size_test={MIN_SIZE}",
        f"--config.evaluate.dataset_json={gt}",
        f"--config.evaluate.image_root={tmp_path / 'split' / 'JPEGImages'}",
        "--config.evaluate.semantics=ytvis",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.load(open(work / "evaluate" / "stats.json"))
    assert stats and all(np.isfinite(v) for v in stats.values() if isinstance(v, float))
    from_checkpoint = json.load(open(work / "evaluate" / "results.json"))
    assert len(from_checkpoint) == 2 * 10
    # Evaluate from the export (here, with torch): the same results.
    ev = cfg.copy_and_resolve_references()
    ev.inference.export = cfg.export.output
    ev.classifier.path = str(root / "vocab.npy")
    ev.evaluate.update(
        dataset_json=gt, image_root=str(tmp_path / "split" / "JPEGImages"), semantics="ytvis"
    )
    modes.run_evaluate(ev, str(tmp_path / "work_export"))
    from_export = json.load(open(tmp_path / "work_export" / "evaluate" / "results.json"))
    assert len(from_export) == len(from_checkpoint)
    for g, e in zip(from_export, from_checkpoint, strict=True):
        assert g["score"] == pytest.approx(e["score"], rel=1e-4, abs=1e-6)
        assert {k: v for k, v in g.items() if k != "score"} == {
            k: v for k, v in e.items() if k != "score"
        }

    pth = tmp_path / "model.pth"
    pth.write_bytes(b"not read: torch is missing")
    proc = no_torch(
        "-m",
        "ov2seg_jax.main",
        "--config=configs/tiny.py",
        f"--workdir={tmp_path / 'w2'}",
        "--mode=convert",
        f"--config.convert.source={pth}",
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "needs PyTorch" in proc.stderr and "ov2seg-jax[torch]" in proc.stderr


def test_the_pytorch_encoder_without_torch_names_the_extra(tmp_path, monkeypatch):
    from ov2seg_jax.vocabulary import classifier_for

    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "torch", None)  # "import torch" raises from here on
    cfg = {
        "encoder": "clip_torch",
        "clip_model": str(tmp_path / "clip"),
        "templates": "single",
        "cache_dir": str(tmp_path),
    }
    with pytest.raises(ValueError, match=r"clip_torch.*pip install 'ov2seg-jax\[torch\]'"):
        classifier_for("cat,dog", cfg, 32)
