"""``scripts/device_check.sh`` in its reduced form (what it runs on a CPU): every step passes and
the one report holds each step's result."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from ov2seg_jax.parity.paths import fixtures_dir

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_reduced_device_check_writes_one_passing_report(tmp_path) -> None:
    msda = os.path.join(fixtures_dir(), "msda")
    if not os.path.isfile(os.path.join(msda, "index.json")):
        pytest.skip(f"msda fixtures not found at {msda}")
    report = tmp_path / "report.md"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "OV2SEG_FIXTURES": fixtures_dir(),
        "DEVICE_CHECK_REDUCED": "1",
        "JAX_PLATFORMS": "cpu",
    }
    result = subprocess.run(
        ["bash", "scripts/device_check.sh", str(report)],
        cwd=_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    text = report.read_text()
    assert result.returncode == 0, text + result.stderr
    assert text.startswith("# Device check: ") and "reduced: 1" in text
    # Each step ran and says so: parity rows all within tolerance, one timing row per size, the
    # tiny model's inference row with its parts, a finite training step.
    assert re.search(r"## MSDA parity.*?-> exit 0.*?(\d+) of \1 rows within tolerance", text, re.S)
    assert re.search(
        r"## MSDA speed.*?-> exit 0.*?inference_480x864_window10/N=1\s+fwd", text, re.S
    )
    assert re.search(r"## Inference.*?-> exit 0.*?configs/tiny.py\s+1x64x96", text, re.S)
    assert re.search(r"## Training step.*?-> exit 0.*?finite True", text, re.S)
    assert text.rstrip().endswith("every step passed")
    assert "VALIDATED_DEVICE_KINDS" not in text  # only a full run on a device proposes a kernel
