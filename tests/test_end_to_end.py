"""The README's main command on the built-in synthetic default, with a reduced step count: every
artefact exists and decodes, and running it again resumes instead of starting over."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

REDUCED = [
    "--config.train.num_steps=6",
    "--config.train.log_every=1",
    "--config.train.checkpoint_every=3",
    "--config.train.eval_every=3",
    "--config.train.eval_max_videos=1",
    "--config.synthetic.num_train_videos=6",
    "--config.synthetic.num_val_videos=2",
]


def _run(workdir: str) -> str:
    cmd = [sys.executable, "-m", "ov2seg_jax.main", "--config", "configs/synthetic.py"]
    cmd += ["--workdir", workdir, *REDUCED]
    # Compile-time optimisations off: the artefacts are checked, not the model's speed.
    env = dict(os.environ, JAX_DISABLE_MOST_OPTIMIZATIONS="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


def _metrics(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("synthetic"))
    return workdir, _run(workdir)


@pytest.mark.slow
def test_summary_and_evaluation(run):
    workdir, stdout = run
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    assert summary["final_step"] == 6
    for key in ("AP", "AP_base", "AP_novel"):
        assert 0.0 <= summary[key] <= 1.0, (key, summary[key])
    assert "video AP on the held-out videos" in stdout
    with open(summary["evaluation"]) as f:
        stats = json.load(f)
    assert all(len(stats[k]) == 12 for k in ("stats", "stats_base", "stats_novel"))
    assert stats["stats"][0] == pytest.approx(summary["AP"])


@pytest.mark.slow
def test_training_logs_and_plot(run):
    workdir, _ = run
    records = _metrics(os.path.join(workdir, "train", "metrics.jsonl"))
    losses = [r for r in records if "loss" in r]
    assert [r["step"] for r in losses] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in losses)
    evals = [r for r in records if "eval/AP" in r]
    assert [r["step"] for r in evals] == [3, 6]
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(f"{workdir}/train"))
    with Image.open(os.path.join(workdir, "training.png")) as im:
        assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200


@pytest.mark.slow
def test_prediction_json_and_overlay(run):
    workdir, stdout = run
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    with open(summary["predict_results"]) as f:
        results = json.load(f)
    categories = {c["id"] for c in json.load(open(f"{workdir}/data/categories.json"))}
    frames = sorted(os.listdir(summary["predict_input"]))
    assert results, "no tracks predicted"
    for r in results:
        assert r["category_id"] in categories and 0.0 <= r["score"] <= 1.0
        assert len(r["segmentations"]) == len(frames)
        for rle in r["segmentations"]:
            if rle is not None:
                m = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
                assert m.shape == (128, 128)
    assert " id  class" in stdout  # the table of tracks
    with Image.open(summary["overlay"]) as gif:
        assert gif.format == "GIF" and gif.n_frames == len(frames)
        gif.seek(gif.n_frames - 1)
        assert np.asarray(gif.convert("RGB")).std() > 0


@pytest.mark.slow
def test_rerun_resumes_instead_of_starting_over(run):
    workdir, _ = run
    metrics_path = os.path.join(workdir, "train", "metrics.jsonl")
    before = _metrics(metrics_path)
    stdout = _run(workdir)
    assert "resumed from step 6" in stdout
    assert _metrics(metrics_path) == before  # no step trained or evaluated again
