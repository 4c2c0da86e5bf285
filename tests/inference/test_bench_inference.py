"""scripts/bench_inference.py on the tiny config: the table's header says how glibc malloc is set
up and which vector path the native kernels take, and the row holds a measured time and memory."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from kernels import native_library

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_bench_inference_total_row_and_allocator_header(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env["OV2SEG_HOST_ALLOCATOR"] = "keep"
    proc = subprocess.run(
        [
            sys.executable,
            "scripts/bench_inference.py",
            "--models=configs/tiny.py",
            "--frames=2",
            "--height=64",
            "--width=64",
            "--repeats=1",
            "--total-only",
            f"--cache-dir={tmp_path}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    header, _, row = proc.stdout.strip().splitlines()[-3:]
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    expected = "keeps freed memory" if glibc else "left as is (not glibc)"
    assert f"glibc malloc: {expected};" in header, header
    widest = native_library.widest_cpu_path()
    assert header.endswith(f"native kernels' widest path: {widest}"), header
    cells = row.split()  # model, T x H x W, msda, total s/f, 5 parts, RSS GB, ...
    assert cells[:2] == ["configs/tiny.py", "2x64x64"], row
    total, rss = float(cells[3]), float(cells[9])
    assert total > 0 and rss > 0, row
