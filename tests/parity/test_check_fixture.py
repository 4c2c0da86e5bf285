"""Parity with the original on every golden fixture directory, through scripts/check_fixture.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch

from ov2seg_jax.parity.check import check_fixture_dir
from ov2seg_jax.parity.report import format_table

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "check_fixture.py")


@pytest.fixture(autouse=True)
def highest_precision():
    old = jax.config.jax_default_matmul_precision
    jax.config.update("jax_default_matmul_precision", "highest")
    yield
    jax.config.update("jax_default_matmul_precision", old)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ov2seg_small", "ov2seg_r50", "ov2seg_swinb", "tracking"])
def test_fixture_directory_passes(fixtures_root, name):
    path = os.path.join(fixtures_root, name)
    if not os.path.isdir(path):
        pytest.skip(f"{path} absent")
    rows = check_fixture_dir(path)
    table = format_table(rows, title=name)
    assert rows, "no rows compared"
    assert all(r.passed for r in rows), table
    names = {r.name for r in rows}
    if name.startswith("ov2seg"):
        # Every stage was compared, not just the end.
        assert any(n.startswith("backbone/") for n in names), table
        assert any(n.startswith("pixel_decoder/") for n in names), table
        assert any(n.startswith("decoder/aux") for n in names), table
        assert any("masks_final" in n for n in names), table


def _run_script(*dirs):
    return subprocess.run(
        [sys.executable, SCRIPT, *dirs], capture_output=True, text=True, cwd=ROOT, timeout=600
    )


@pytest.mark.slow
def test_script_fails_on_a_perturbed_checkpoint(fixtures_root, tmp_path):
    """A 1 % change of one decoder LayerNorm must turn rows red and the exit code non-zero."""
    src = os.path.join(fixtures_root, "ov2seg_small")
    dst = tmp_path / "ov2seg_small_perturbed"
    shutil.copytree(src, dst)
    os.chmod(dst, 0o755)
    ckpt = dst / "model_small.pth"
    os.chmod(ckpt, 0o644)
    obj = torch.load(ckpt, weights_only=True)
    key = "sem_seg_head.predictor.decoder_norm.weight"
    obj["model"][key] = obj["model"][key] * 1.01
    torch.save(obj, ckpt)
    proc = _run_script(str(dst))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout


def test_script_rejects_a_directory_of_unknown_layout(tmp_path):
    (tmp_path / "something.npz").write_bytes(b"")
    proc = _run_script(str(tmp_path))
    assert proc.returncode == 2
    assert "neither a model fixture directory" in proc.stderr


def test_manifest_regeneration_matches_the_shipped_checkpoint(fixtures_root):
    """The numpy recipe and the real float16 checkpoint file give the same state dict."""
    from ov2seg_jax.convert.readers import load_state_dict
    from ov2seg_jax.parity.manifest import regenerate_state_dict

    d = os.path.join(fixtures_root, "ov2seg_small")
    from_file = load_state_dict(os.path.join(d, "model_small.pth"))
    from_recipe = regenerate_state_dict(d)  # also verifies every sha256
    assert from_file.keys() == from_recipe.keys()
    for k in from_recipe:
        np.testing.assert_array_equal(from_file[k], from_recipe[k], err_msg=k)
