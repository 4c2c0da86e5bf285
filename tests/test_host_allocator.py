"""Importing ov2seg_jax makes glibc keep freed blocks: a second large block reuses the pages of
the first instead of faulting in fresh ones. Each case is a fresh process, since the settings
are process-wide and the test process has its own."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = 256 << 20  # far over glibc's largest mmap threshold (32 MiB)
PAGES = BLOCK // 4096

# Allocate, touch, free and allocate-and-touch again a block; print the second round's faults.
PROBE = f"""
import ctypes, resource
import ov2seg_jax
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def faults_of_one_block():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    p = libc.malloc({BLOCK})
    ctypes.memset(p, 1, {BLOCK})
    libc.free(p)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_one_block()
print(ov2seg_jax.host_allocator.STATE)
print(faults_of_one_block())
"""

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the allocator settings are glibc's; other C libraries are left alone",
)


def _probe(**env_overrides):
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env.pop("OV2SEG_HOST_ALLOCATOR", None)
    env.update(env_overrides)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    state, faults = out.stdout.strip().splitlines()[-2:]
    return state, int(faults)


def test_freed_blocks_are_reused_without_page_faults():
    state, faults = _probe()
    assert state == "keeps freed memory"
    assert faults < PAGES // 20, f"{faults} page faults for a reused {BLOCK >> 20} MiB block"


def test_opt_out_keeps_glibc_defaults():
    state, faults = _probe(OV2SEG_HOST_ALLOCATOR="system")
    assert state == "left as is (OV2SEG_HOST_ALLOCATOR=system)"
    # glibc maps the block afresh and the kernel faults in every page (or every huge page).
    assert faults > PAGES // 600


def test_users_own_malloc_tunables_win():
    state, _ = _probe(GLIBC_TUNABLES="glibc.malloc.arena_max=2")
    assert state == "left as is (GLIBC_TUNABLES sets malloc options)"


def test_a_wrong_choice_names_the_variable():
    env = dict(os.environ, OV2SEG_HOST_ALLOCATOR="fast")
    out = subprocess.run(
        [sys.executable, "-c", "import ov2seg_jax"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert "OV2SEG_HOST_ALLOCATOR must be 'keep' or 'system', not 'fast'" in out.stderr
