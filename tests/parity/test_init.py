"""A fresh init of our model matches the original's initialisers (init fixture)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from ov2seg_jax.models.initializers import msda_direction_grid
from ov2seg_jax.parity.report import format_table


@pytest.fixture(scope="module")
def init_case(fixtures_root):
    from ov2seg_jax.parity.init_fixture import fresh_variables, load_init_fixture

    path = os.path.join(fixtures_root, "init")
    if not os.path.isfile(os.path.join(path, "init_stats.json")):
        pytest.skip(f"{path} absent")
    entries, exact = load_init_fixture(path)
    ours, _ = fresh_variables(entries, seed=0)
    return path, entries, exact, ours


@pytest.mark.slow
def test_fresh_init_matches_the_original(init_case):
    from ov2seg_jax.parity.init_fixture import check_init_variables

    path, _, _, ours = init_case
    rows = check_init_variables(path, ours)
    assert all(r.passed for r in rows), format_table([r for r in rows if not r.passed])
    assert len(rows) >= 234


@pytest.mark.slow
def test_flax_defaults_would_fail(init_case):
    """The check has teeth: Flax's default Dense init (lecun normal, zero bias) on the heads and
    a zero grid fail their rows."""
    from ov2seg_jax.parity.init_fixture import check_init_entries

    _, entries, exact, ours = init_case
    rng = np.random.default_rng(0)
    broken = dict(ours)
    name = "sem_seg_head.predictor.class_embed.linear.0.weight"
    broken[name] = rng.normal(0, 1 / math.sqrt(256), ours[name].shape).astype(np.float32)
    bias = "sem_seg_head.predictor.class_embed.linear.0.bias"
    broken[bias] = np.zeros_like(ours[bias])
    grid = "sem_seg_head.pixel_decoder.transformer.encoder.layers.0.self_attn.sampling_offsets.bias"
    broken[grid] = np.zeros_like(ours[grid])
    failed = {r.name for r in check_init_entries(entries, exact, broken) if not r.passed}
    assert {name, bias, grid} <= failed, failed


def test_direction_grid_values():
    g = msda_direction_grid(8, 3, 4).reshape(8, 3, 4, 2)
    np.testing.assert_array_equal(g[0, :, :, 0], [[1, 2, 3, 4]] * 3)  # head 0 looks along +x
    np.testing.assert_array_equal(g[0, :, :, 1], 0)
    np.testing.assert_allclose(g[1, 0, 0], [1, 1], atol=1e-7)  # 45 degrees, scaled to max 1
    np.testing.assert_allclose(g[2, 0, 1], [0, 2], atol=1e-6)
    np.testing.assert_allclose(g[4, 2, 3], [-4, 0], atol=1e-6)


def test_unusable_directory_exits_2(tmp_path):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [sys.executable, os.path.join(root, "scripts", "check_init.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "init_stats.json" in proc.stderr and "Traceback" not in proc.stderr
