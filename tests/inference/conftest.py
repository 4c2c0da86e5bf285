"""A model directory converted once from the small fixture checkpoint, shared by the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ov2seg_jax import checkpoint
from ov2seg_jax.convert.convert_ov2seg import convert_state_dict
from ov2seg_jax.convert.infer_config import infer_model_config
from ov2seg_jax.convert.readers import load_state_dict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def small_model_dir(fixtures_root, tmp_path_factory) -> str:
    state = load_state_dict(os.path.join(fixtures_root, "ov2seg_small", "model_small.pth"))
    cfg = infer_model_config(state)
    conv = convert_state_dict(state, cfg)
    return checkpoint.save_model(
        str(tmp_path_factory.mktemp("small_model")), conv.variables, cfg, conv.classifier
    )


def run_main(*args: str) -> subprocess.CompletedProcess:
    """``python -m ov2seg_jax.main ARGS`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "ov2seg_jax.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
