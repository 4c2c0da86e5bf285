"""Damaged or incomplete checkpoints: one line naming the directory, the entry and what to do
(exit status 2 from the entry point), and a trainer that falls back to its previous checkpoint.

Damage is what an interrupted copy leaves: the largest data file cut to 100 bytes, or a file
missing."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from configs import tiny
from ov2seg_jax import checkpoint, modes
from ov2seg_jax.checkpoint_damage import CheckpointDamagedError
from ov2seg_jax.train import checkpoints
from ov2seg_jax.train.state import create_train_state
from tests.inference.conftest import run_main, write_tiny_model

ADVICE = "convert the checkpoint again (--mode convert) or copy the directory again"


def _largest_data_file(item_dir: str) -> str:
    files = glob.glob(os.path.join(item_dir, "ocdbt.process_*", "d", "*"))
    return max(files, key=os.path.getsize)


def _damage(src: str, dst: str, how: str) -> str:
    """A copy of model directory ``src`` with one file truncated or removed."""
    shutil.copytree(src, dst)
    variables = os.path.join(dst, checkpoint.VARIABLES)
    if how == "truncated data file":
        with open(_largest_data_file(variables), "r+b") as f:
            f.truncate(100)
    elif how == "missing data file":
        os.remove(_largest_data_file(variables))
    elif how == "missing index file":
        os.remove(glob.glob(os.path.join(variables, "d", "*"))[0])
    elif how == "missing metadata":
        os.remove(os.path.join(variables, "_METADATA"))
    elif how == "missing variables":
        shutil.rmtree(variables)
    return dst


# (damage, the entry the line names, its reason)
CASES = {
    "truncated data file": (r"(params|frozen)\.\S+", r"a file of its data is cut short"),
    "missing data file": (r"(params|frozen)\.\S+", r"its data cannot be read"),
    "missing index file": (r"variables/d/[0-9a-f]+", r"the index file is missing"),
    "missing metadata": (r"variables/_METADATA", r"missing"),
    "missing variables": (r"variables", r"missing"),
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return write_tiny_model(str(tmp_path_factory.mktemp("model")))


def _expect_line(message: str, directory: str, how: str) -> None:
    entry, reason = CASES[how]
    assert "\n" not in message, message
    assert message.startswith(f"{directory} is damaged or incomplete: "), message
    assert message.endswith(ADVICE), message
    body = message[len(f"{directory} is damaged or incomplete: ") : -len(ADVICE)]
    assert re.fullmatch(rf"({entry}): .*{reason}.*; ", body), body


def _frames(folder) -> str:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).save(f"{folder}/{i:05d}.png")
    return str(folder)


def _config(model: str, tmp_path):
    cfg = tiny.get_config()
    cfg.checkpoint.path = model
    clf = np.random.default_rng(0).standard_normal((3, 32)).astype(np.float32)
    np.save(tmp_path / "clf.npy", clf)
    cfg.classifier.path = str(tmp_path / "clf.npy")
    cfg.predict.input = _frames(tmp_path / "frames")
    cfg.predict.overlay = "none"
    videos = [{"id": 1, "file_names": ["v/00000.png"], "height": 64, "width": 64, "length": 1}]
    cats = [{"id": i + 1, "name": f"c{i}"} for i in range(3)]
    (tmp_path / "gt.json").write_text(json.dumps({"videos": videos, "categories": cats}))
    _frames(tmp_path / "images" / "v")
    cfg.evaluate.dataset_json = str(tmp_path / "gt.json")
    cfg.evaluate.image_root = str(tmp_path / "images")
    return cfg


@pytest.mark.parametrize("how", sorted(CASES))
def test_predict_and_evaluate_name_the_damage_in_one_line(model_dir, tmp_path, how):
    damaged = _damage(model_dir, str(tmp_path / "model"), how)
    cfg = _config(damaged, tmp_path)
    for run in (modes.run_predict, modes.run_evaluate):
        with pytest.raises(modes.UserError) as info:
            run(cfg, str(tmp_path / "work"))
        _expect_line(str(info.value), damaged, how)
    assert not os.path.exists(tmp_path / "work" / "predict")


def test_damaged_config_and_classifier_files(model_dir, tmp_path):
    damaged = _damage(model_dir, str(tmp_path / "model"), "")
    np.save(os.path.join(damaged, checkpoint.CLASSIFIER), np.ones((3, 32), np.float32))
    with open(os.path.join(damaged, checkpoint.CLASSIFIER), "r+b") as f:
        f.truncate(90)
    with pytest.raises(CheckpointDamagedError, match=r"model is damaged .*: classifier\.npy: "):
        checkpoint.load_classifier(damaged)
    with open(os.path.join(damaged, checkpoint.MODEL_CONFIG), "r+b") as f:
        f.truncate(50)
    with pytest.raises(modes.UserError, match=r"model is damaged .*: model_config\.json: unread"):
        modes.run_predict(_config(damaged, tmp_path), str(tmp_path / "work"))


def test_the_entry_point_prints_one_line_and_exits_2(model_dir, tmp_path):
    damaged = _damage(model_dir, str(tmp_path / "model"), "truncated data file")
    cfg = _config(damaged, tmp_path)
    proc = run_main(
        "--config=configs/tiny.py",
        f"--workdir={tmp_path / 'work'}",
        "--mode=predict",
        f"--config.checkpoint.path={damaged}",
        f"--config.classifier.path={cfg.classifier.path}",
        f"--config.predict.input={cfg.predict.input}",
        "--config.predict.overlay=none",
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: {damaged} is damaged or incomplete: ")
    assert "Traceback" not in proc.stderr and "Event loop" not in proc.stderr


def test_convert_then_load(fixtures_root, tmp_path):
    """A model directory written by --mode convert (classifier and config included)."""
    cfg = tiny.get_config()
    cfg.convert.source = os.path.join(fixtures_root, "ov2seg_small", "model_small.pth")
    cfg.convert.infer_architecture = True
    work = str(tmp_path / "work")
    written = modes.run_convert(cfg, work)
    assert modes.load_predictor(cfg, work) is not None  # whole: it loads
    for how in ("truncated data file", "missing index file"):
        damaged = _damage(written, str(tmp_path / how.replace(" ", "_")), how)
        cfg.checkpoint.path = damaged
        with pytest.raises(modes.UserError) as info:
            modes.load_predictor(cfg, work)
        _expect_line(str(info.value), damaged, how)


# ----------------------------------------------------------------------------- training


def _state(step: int):
    # Large enough for OCDBT to keep the values in data files, not inline in its index.
    params = {"w": jnp.full((64, 64), float(step)), "b": jnp.arange(4096.0) * step}
    state = create_train_state({"params": params}, optax.adam(1e-3), seed=0)
    return state.replace(step=jnp.asarray(step, jnp.int32))


def _saved_run(directory: str, steps=(2, 4)) -> None:
    manager = checkpoints.make_manager(directory, keep=3, asynchronous=False)
    for step in steps:
        checkpoints.save(manager, _state(step), {"data_position": 10 * step, "batch_size": 2})
    manager.close()


def _restore(directory: str):
    manager = checkpoints.make_manager(directory, keep=3, asynchronous=False)
    abstract = jax.eval_shape(lambda: _state(0))
    try:
        return checkpoints.restore_latest(manager, abstract), manager.all_steps()
    finally:
        manager.close()


@pytest.mark.parametrize("how", ["truncated data file", "missing index file", "missing meta"])
def test_trainer_falls_back_to_the_previous_checkpoint(tmp_path, capsys, how):
    directory = str(tmp_path / "train" / "checkpoints")
    _saved_run(directory)
    step4 = os.path.join(directory, "4")
    if how == "truncated data file":
        with open(_largest_data_file(os.path.join(step4, "state")), "r+b") as f:
            f.truncate(100)
    elif how == "missing index file":
        os.remove(glob.glob(os.path.join(step4, "state", "d", "*"))[0])
    else:
        os.remove(os.path.join(step4, "meta", "metadata"))
    (state, meta), steps = _restore(directory)
    assert int(state.step) == 2 and meta["data_position"] == 20
    np.testing.assert_array_equal(state.params["w"], np.full((64, 64), 2.0))
    np.testing.assert_array_equal(state.params["b"], np.arange(4096.0) * 2)
    assert list(steps) == [2]
    moved = str(tmp_path / "train" / checkpoints.DAMAGED / "4")
    assert os.path.isdir(moved) and not os.path.exists(step4)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"training checkpoint {step4} is damaged or incomplete: ")
    assert out[1:] == [
        f"moved the damaged training checkpoint of step 4 to {moved}",
        "resuming from the previous training checkpoint, step 2",
    ]
    # The run can save step 4 again.
    manager = checkpoints.make_manager(directory, keep=3, asynchronous=False)
    assert checkpoints.save(manager, _state(4), {"data_position": 40, "batch_size": 2})
    manager.close()
    (state, _), steps = _restore(directory)
    assert int(state.step) == 4 and list(steps) == [2, 4]


def test_trainer_stops_with_one_line_when_no_checkpoint_reads_back(tmp_path):
    directory = str(tmp_path / "checkpoints")
    _saved_run(directory, steps=(2,))
    with open(_largest_data_file(os.path.join(directory, "2", "state")), "r+b") as f:
        f.truncate(100)
    with pytest.raises(CheckpointDamagedError) as info:
        _restore(directory)
    message = str(info.value)
    assert "\n" not in message
    d = re.escape(directory)
    assert re.fullmatch(
        rf"{d}/2 is damaged or incomplete: (params|opt_state)\.\S+: a file of its data is "
        rf"cut short \(.*\); there is no earlier step: move {d} aside to train from the "
        "start",
        message,
    ), message
    assert os.path.isdir(os.path.join(directory, "2"))  # left where it was
