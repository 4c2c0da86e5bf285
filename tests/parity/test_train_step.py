"""One training step equals the original's (train_step fixture), and a broken rule is caught."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import pytest

from ov2seg_jax.parity.report import format_table

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "check_train_step.py")


@pytest.fixture(scope="module")
def replay(fixtures_root, metadata_root):
    """The shipped step replayed once (compiling the step takes ~2 min on a busy 2-core CPU)."""
    from ov2seg_jax.parity.train_step_fixture import load_train_step_case, run_step

    path = os.path.join(fixtures_root, "train_step")
    if not os.path.isfile(os.path.join(path, "train_step.npz")):
        pytest.skip(f"{path} absent")
    old = jax.config.jax_default_matmul_precision
    jax.config.update("jax_default_matmul_precision", "highest")
    try:
        case = load_train_step_case(path)
        yield case, run_step(case)
    finally:
        jax.config.update("jax_default_matmul_precision", old)


def _failed(rows) -> set[str]:
    return {r.name for r in rows if not r.passed}


@pytest.mark.slow
def test_step_matches_the_original(replay):
    from ov2seg_jax.parity.train_step_rows import check_train_step_case

    case, result = replay
    rows = check_train_step_case(case, result)
    assert all(r.passed for r in rows), format_table([r for r in rows if not r.passed])
    names = {r.name for r in rows}
    # every quantity has its row: 16 terms, total, norm, clip, predictions, every parameter
    assert {"total loss", "global grad norm", "clip coefficient"} <= names
    assert sum(n.startswith("loss/") for n in names) == 16
    assert sum(n.startswith("grad ") for n in names) == len(case.meta["parameters"]) == 143
    assert sum(n.startswith("after ") for n in names) == 143
    assert sum(n.startswith("train-mode pred") for n in names) == 12


@pytest.mark.slow
@pytest.mark.parametrize(
    "rule, must_fail",
    [
        # no weight decay on biases (a common default the original does not have)
        (
            (r".*/bias", 1.0, 0.0, "no decay on biases"),
            "after sem_seg_head.predictor.mask_embed.layers.2.bias",
        ),
        # the backbone at the full learning rate
        ((r"backbone/.*", 1.0, 0.05, "full lr backbone"), "after backbone.base.conv1.weight"),
        # decay on the embeddings
        (
            (r"predictor/query_feat", 1.0, 0.05, "decayed embedding"),
            "after sem_seg_head.predictor.query_feat.weight",
        ),
    ],
)
def test_a_changed_rule_fails(replay, rule, must_fail):
    from ov2seg_jax.parity.train_step_fixture import rerun_update
    from ov2seg_jax.parity.train_step_rows import check_train_step_case

    case, result = replay

    def edit(config):
        config.optimizer.rules = (rule, *config.optimizer.rules)

    failed = _failed(check_train_step_case(case, rerun_update(case, result, edit)))
    assert must_fail in failed, sorted(failed)[:10]
    assert ("weight decay of every parameter" in failed) == (rule[2] != 0.05 or "query" in rule[0])
    assert ("lr of every parameter" in failed) == (rule[1] != 1.0 or rule[0] == r"backbone/.*")


@pytest.mark.slow
def test_dropping_the_clipping_fails(replay):
    """Without the full-model clipping (coefficient 7.7e-6 here) the update rows fail."""
    from ov2seg_jax.parity.train_step_fixture import rerun_update
    from ov2seg_jax.parity.train_step_rows import check_train_step_case

    case, result = replay

    def no_clip(config):
        config.optimizer.clip_norm = 0.0

    failed = _failed(check_train_step_case(case, rerun_update(case, result, no_clip)))
    assert sum(n.startswith("after ") for n in failed) > 100


def test_unusable_directory_exits_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "train_step.npz" in proc.stderr and "Traceback" not in proc.stderr
