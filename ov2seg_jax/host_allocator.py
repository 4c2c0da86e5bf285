"""Host memory for XLA:CPU: freed blocks are kept for the next call instead of given back.

XLA:CPU mallocs the buffers of a program each time it runs and frees them when it ends. glibc
serves every block over its mmap threshold (32 MiB at most) with fresh pages from the kernel and
unmaps them on free, so each call of the window function faults its whole working set in again,
one 4 KiB page at a time, and the kernel zeroes every page. Measured on the 2-core EPYC (R50, a
window of 4 frames at 480x864, 3 calls): 6.2 M minor faults and 2.45-2.69 s per frame with glibc's
defaults; 0.5 M faults and 1.84-1.99 s per frame with the settings below, and a lower peak RSS.

:func:`keep_freed_memory` sets three glibc options through ``mallopt``:

- ``M_MMAP_MAX = 0``: large blocks come from the heap, not from their own mappings;
- ``M_TRIM_THRESHOLD = 2**31 - 1``: free memory at the top of the heap is not given back;
- ``M_ARENA_MAX = 1``: threads share the main arena, whose heap grows without the 64 MiB limit
  of a thread's own arena (whose large blocks would otherwise be mapped and unmapped again).

So a process's resident memory stays at its high-water mark between calls. Importing
``ov2seg_jax`` applies it once; ``OV2SEG_HOST_ALLOCATOR=system`` keeps glibc's defaults, and so
does a ``GLIBC_TUNABLES`` that already sets ``glibc.malloc.*`` options. Other C libraries
(musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import platform

ENV_VAR = "OV2SEG_HOST_ALLOCATOR"

# mallopt parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
SETTINGS = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1), (M_ARENA_MAX, 1))


def _reason_to_skip() -> str | None:
    choice = os.environ.get(ENV_VAR, "keep").strip().lower()
    if choice == "system":
        return f"{ENV_VAR}=system"
    if choice != "keep":
        raise ValueError(f"{ENV_VAR} must be 'keep' or 'system', not {choice!r}")
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "not glibc"
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES sets malloc options"
    return None


def keep_freed_memory() -> str:
    """Apply :data:`SETTINGS` to this process's glibc malloc; returns what was done and why."""
    reason = _reason_to_skip()
    if reason is not None:
        return f"left as is ({reason})"
    libc = ctypes.CDLL(None)
    for parameter, value in SETTINGS:
        if libc.mallopt(ctypes.c_int(parameter), ctypes.c_int(value)) != 1:
            return f"partly set (glibc refused mallopt({parameter}, {value}))"
    return "keeps freed memory"


STATE = keep_freed_memory()
