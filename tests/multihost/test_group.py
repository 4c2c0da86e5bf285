"""Training and evaluation by real process groups on localhost (CPU devices, gloo collectives).

One module fixture trains the test config (tiny network, synthetic videos, global batch 4, six
steps) three ways at once: 1 process x 1 device, 1 process x 4 devices, and 2 processes x 2
devices started by ``scripts/launch_local.py``. The other tests reuse these runs: their final
parameters, the sample ids each host read, their checkpoints and the trained model.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from ov2seg_jax import checkpoint
from ov2seg_jax.convert.convert_ov2seg import abstract_variables
from ov2seg_jax.data.synthetic import SyntheticSpec, build_synthetic_dataset
from tests.multihost import group

pytestmark = pytest.mark.slow
STEPS = 6


def _train_command(workdir, data_root, main=group.MAIN):
    return [*main, "--config", group.CONFIG, "--workdir", str(workdir), "--mode", "train"] + (
        group.data_args(data_root)
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("multihost")
    data = str(root / "data")
    build_synthetic_dataset(data, SyntheticSpec(num_train_videos=8, num_val_videos=3, num_frames=2))
    dirs = {k: root / k for k in ("w11", "w14", "w22", "s11", "s22")}
    for d in dirs.values():
        d.mkdir()
    launcher = [sys.executable, os.path.join(group.ROOT, "scripts", "launch_local.py")]
    procs = [
        group.start(
            _train_command(dirs["w11"], data, group.RECORDING_MAIN),
            str(root / "w11"),
            1,
            OV2SEG_SHARES_DIR=str(dirs["s11"]),
        ),
        group.start(_train_command(dirs["w14"], data), str(root / "w14"), 4),
        group.start(
            [*launcher, "-n", "2", "--devices", "2", "--"]
            + _train_command(dirs["w22"], data, group.RECORDING_MAIN),
            str(root / "w22"),
            2,
            OV2SEG_SHARES_DIR=str(dirs["s22"]),
        ),
    ]
    codes = group.wait(procs, timeout=1200)
    for name, code in zip(("w11", "w14", "w22"), codes, strict=True):
        assert code == 0, (name, code, group.tail(str(root / name)))
    return dict(root=root, data=data, **{k: str(v) for k, v in dirs.items()})


def _params(model_dir: str) -> dict[str, np.ndarray]:
    cfg = checkpoint.load_model_config(model_dir)
    variables = checkpoint.load_model(model_dir, abstract_variables(cfg))
    return {
        jax.tree_util.keystr(p): np.asarray(v)
        for p, v in jax.tree_util.tree_leaves_with_path(variables)
    }


def _checkpoint_params(workdir: str, step: int) -> dict[str, np.ndarray]:
    """The parameters of a training checkpoint, restored onto this process's one device."""
    path = os.path.join(workdir, "train", "checkpoints", str(step), "state")
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    with ocp.StandardCheckpointer() as ckptr:
        meta = ckptr.metadata(path)
        meta = getattr(meta, "item_metadata", meta)
        target = jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), dict(meta)
        )
        state = ckptr.restore(path, target)
    return {
        jax.tree_util.keystr(p): np.asarray(v)
        for p, v in jax.tree_util.tree_leaves_with_path(state["params"])
    }


def test_two_processes_train_to_the_parameters_of_one(runs):
    """After N = 2 steps, 2 processes x 2 devices == 1 x 4 == 1 x 1 (global batch 4) to 2e-6.

    Only the order of the cross-device sums differs; a wrong share or reduction is far off.
    Later steps are not compared at this tolerance: AdamW turns the last-bit differences of
    near-zero gradients into differences of a learning rate within a few steps.
    """
    p22 = _checkpoint_params(runs["w22"], 2)
    for other in ("w14", "w11"):
        p = _checkpoint_params(runs[other], 2)
        assert p.keys() == p22.keys()
        diffs = sorted(((float(np.max(np.abs(p[k] - p22[k]))), k) for k in p), reverse=True)
        assert diffs[0][0] < 2e-6, (other, diffs[:5])
    # and the steps did move them (by about the learning rate, 1e-3)
    p0 = _checkpoint_params(runs["w22"], 4)
    assert max(float(np.max(np.abs(p0[k] - p22[k]))) for k in p22) > 1e-4
    # process 0 alone wrote the logs: one record per step, one TensorBoard file
    train = os.path.join(runs["w22"], "train")
    records = [json.loads(line) for line in open(os.path.join(train, "metrics.jsonl"))]
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    assert len([f for f in os.listdir(train) if f.startswith("events")]) == 1
    ref = [json.loads(line) for line in open(os.path.join(runs["w11"], "train", "metrics.jsonl"))]
    np.testing.assert_allclose(
        [r["loss"] for r in records[:2]], [r["loss"] for r in ref[:2]], rtol=1e-6
    )


def _shares(path: str) -> dict[int, list[int]]:
    return {step: ids for step, ids in (json.loads(line) for line in open(path))}


def test_host_shares_are_disjoint_and_cover_the_global_batch(runs):
    one = _shares(os.path.join(runs["s11"], "shares.0.jsonl"))
    h0 = _shares(os.path.join(runs["s22"], "shares.0.jsonl"))
    h1 = _shares(os.path.join(runs["s22"], "shares.1.jsonl"))
    assert sorted(one) == list(range(1, STEPS + 1))
    for step in range(1, STEPS + 1):
        assert len(h0[step]) == len(h1[step]) == 2  # each host: its half of the global batch
        assert not set(h0[step]) & set(h1[step]), step
        # process 0's rows come first in the global batch, as one process orders it
        assert h0[step] + h1[step] == one[step], step


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_checkpoints_restore_with_another_number_of_processes(runs, tmp_path):
    """2 processes' checkpoint -> 1 process, and 1 process's -> 2 processes: a run that resumes at
    its last step restores the state and exports it unchanged."""
    for source, target in (("w22", "to1"), ("w11", "to2")):
        shutil.copytree(
            os.path.join(runs[source], "train", "checkpoints"),
            tmp_path / target / "train" / "checkpoints",
        )
    one = group.start(_train_command(tmp_path / "to1", runs["data"]), str(tmp_path / "to1.log"), 1)
    two = group.start_group(
        _train_command(tmp_path / "to2", runs["data"]), str(tmp_path / "to2.log"), 2, 1
    )
    codes = group.wait([one, *two], timeout=600)
    assert codes == [0, 0, 0], (codes, group.tail(str(tmp_path / "to1.log")))
    for log in (str(tmp_path / "to1.log"), str(tmp_path / "to2.log.0")):
        assert f"resumed from step {STEPS}" in open(log + ".out").read()
    _same(
        _params(str(tmp_path / "to1" / "checkpoint")),
        _params(os.path.join(runs["w22"], "checkpoint")),
    )
    _same(
        _params(str(tmp_path / "to2" / "checkpoint")),
        _params(os.path.join(runs["w11"], "checkpoint")),
    )


def test_a_killed_process_stops_the_group_and_a_restart_resumes_exactly(runs, tmp_path):
    work = tmp_path / "work"
    command = _train_command(work, runs["data"])
    procs = group.start_group(command, str(tmp_path / "killed"), 2, 2)
    first = work / "train" / "checkpoints" / "2"
    deadline = time.monotonic() + 900
    while not first.is_dir() and time.monotonic() < deadline and procs[0].poll() is None:
        time.sleep(0.05)
    assert first.is_dir(), group.tail(str(tmp_path / "killed.0"))
    procs[1].send_signal(signal.SIGKILL)
    t = time.monotonic()
    (code,) = group.wait(procs[:1], timeout=120)
    elapsed = time.monotonic() - t
    procs[1].wait()
    err = group.tail(str(tmp_path / "killed.0"), n=10**7)
    assert code not in (0, None), err
    assert elapsed < 60, elapsed  # heartbeat_timeout_s is 10 in the test config
    # a collective with the dead process failed (our line), or JAX's heartbeat check ended it
    assert "another process has probably stopped" in err or "another task died" in err, err[-3000:]
    assert not (work / "checkpoint").exists()  # it was stopped before the end

    procs = group.start_group(command, str(tmp_path / "restarted"), 2, 2)
    codes = group.wait(procs, timeout=900)
    assert codes == [0, 0], (codes, group.tail(str(tmp_path / "restarted.0")))
    assert "resumed from step" in open(str(tmp_path / "restarted.0.out")).read()
    _same(_params(str(work / "checkpoint")), _params(os.path.join(runs["w22"], "checkpoint")))


def _video_ids(path: str) -> list[int]:
    return [json.loads(line)["video_id"] for line in open(path)]


def test_evaluate_on_two_processes_equals_one(runs, tmp_path):
    """--mode evaluate of the trained model on the held-out split: the same results.json and AP;
    each video predicted once, by one host."""
    model = os.path.join(runs["w22"], "checkpoint")

    def command(workdir):
        return [
            *group.MAIN,
            "--config",
            group.CONFIG,
            "--workdir",
            str(workdir),
            "--mode",
            "evaluate",
            f"--config.checkpoint.path={model}",
            *group.data_args(runs["data"]),
        ]

    one = group.start(command(tmp_path / "one"), str(tmp_path / "one.log"), 1)
    two = group.start_group(command(tmp_path / "two"), str(tmp_path / "two.log"), 2, 1)
    codes = group.wait([one, *two], timeout=600)
    assert codes == [0, 0, 0], (codes, group.tail(str(tmp_path / "two.log.0")))
    a, b = tmp_path / "one" / "evaluate", tmp_path / "two" / "evaluate"
    assert (a / "results.json").read_bytes() == (b / "results.json").read_bytes()
    assert json.loads((a / "stats.json").read_text()) == json.loads((b / "stats.json").read_text())
    host0, host1 = (
        _video_ids(str(b / "predictions.jsonl")),
        _video_ids(str(b / "predictions.1.jsonl")),
    )
    everything = _video_ids(str(a / "predictions.jsonl"))
    assert len(everything) == 3 and host0 == everything[0::2] and host1 == everything[1::2]
    results = json.loads((a / "results.json").read_text())
    assert {r["video_id"] for r in results} == set(everything)
