"""Start-up of ``--mode predict``: the process age it reports, and the benchmark that reads it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from ov2seg_jax.inference.predict_video import PredictOutputs
from ov2seg_jax.process_clock import process_age_s

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_process_age_grows_with_the_process():
    first = process_age_s()
    assert first is not None and first > 0.0  # this process has run pytest's collection
    time.sleep(0.05)
    assert process_age_s() >= first + 0.04


def test_a_fresh_process_is_young():
    code = "from ov2seg_jax.process_clock import process_age_s; print(process_age_s())"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert 0.0 <= float(out.stdout) < 10.0


def _outputs(ages):
    return PredictOutputs(None, "r", "c", "t", None, "", window_ages_s=ages)


def test_startup_is_the_first_window_less_a_window():
    assert _outputs((7.0, 9.5)).startup_s() == pytest.approx(4.5)
    assert _outputs((7.0, 9.5)).window_s() == pytest.approx(2.5)
    assert _outputs((7.0,)).startup_s() is None
    assert _outputs((7.0,)).window_s() is None
    assert _outputs(()).startup_s() is None


@pytest.mark.slow
def test_bench_startup_reports_a_cache_hit_in_the_second_process(tmp_path):
    """Two fresh predict processes on the tiny config: the second loads the executable the
    first compiled, so its start-up is shorter."""
    proc = subprocess.run(
        [
            sys.executable,
            "scripts/bench_startup.py",
            "--models=configs/tiny.py",
            "--height=64",
            "--width=96",
            "--frames=4",
            "--runs=2",
            f"--workdir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("configs/")]
    assert [r[1:4] for r in rows] == [["checkpoint", "1", "cold"], ["checkpoint", "2", "warm"]]
    startup = [float(r[4]) for r in rows]
    window = [float(r[5]) for r in rows]
    assert all(s > 0 for s in startup) and all(w > 0 for w in window), proc.stdout
    assert startup[1] < startup[0], proc.stdout
    cached = [f for _, _, files in os.walk(tmp_path / "tiny" / "xla_cache") for f in files]
    assert cached, "the first process stored no executable"
    programs = [f for f in cached if f.endswith(".jax_exported")]
    # one window program (windows of 2 frames), lowered by the first process, read by the second
    assert len(programs) == 1 and programs[0].startswith("window_2x"), cached
    assert re.search(r"\d+ frames of 64x96", proc.stdout)
