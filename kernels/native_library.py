"""The native CPU kernels' shared library: where it is, loading it, registering its handlers.

The package's build step (``setup.py``, run by ``pip install``) compiles every native CPU kernel
(``kernels/*/native/*.cc``, sharing ``kernels/native/parallel_for.h``) into one XLA FFI handler
library, ``kernels/native/_cpu_kernels*.so``. Each kernel module names its handlers and calls
:func:`register`; a lowered program calls them by target name, so one content hash of this file
(:func:`ov2seg_jax.compile_cache.native_library_tag`) says which build a compiled or exported
program belongs to.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os

import jax
import numpy as np

NATIVE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "native")
BUILD_HINT = "build it with `pip install -e .` (or `python setup.py build_ext --inplace`)"


def library_path() -> str | None:
    """Path of the compiled handler library, or None when the package was not built."""
    matches = sorted(glob.glob(os.path.join(NATIVE_DIR, "_cpu_kernels*.so")))
    return matches[0] if matches else None


@functools.cache
def _library() -> ctypes.CDLL | None:
    path = library_path()
    return None if path is None else ctypes.CDLL(path)


# The vector code paths every native kernel is compiled for, as its handlers' `path` attribute:
# "auto" (the widest this CPU runs; what programs use) or one path alone (for tests).
CPU_PATHS: dict[str, int] = {"auto": 0, "portable": 1, "avx2": 2, "avx512": 3}


def cpu_paths() -> tuple[str, ...]:
    """The code paths this CPU runs besides "auto": "portable" always, then "avx2" (with FMA)
    and "avx512" where the CPU has them; () when the library is not built."""
    library = _library()
    if library is None:
        return ()
    probe = library.Ov2segCpuPaths
    probe.restype, probe.argtypes = ctypes.c_int64, []
    bits = int(probe())  # bit (code - 1) of each path's CPU_PATHS code
    return tuple(name for name, code in CPU_PATHS.items() if code and bits >> (code - 1) & 1)


def widest_cpu_path() -> str:
    """The path "auto" takes for a kernel without conditions of its own ("not built" when the
    library is missing), for reports."""
    return (cpu_paths() or ("not built",))[-1]


def path_attr(path: str) -> np.int64:
    """The handlers' `path` attribute for ``path`` (a ValueError names the choices)."""
    if path not in CPU_PATHS:
        raise ValueError(f"unknown native code path {path!r}; expected one of {sorted(CPU_PATHS)}")
    return np.int64(CPU_PATHS[path])


@functools.cache
def register(handlers: tuple[tuple[str, str], ...]) -> bool:
    """Register ``(ffi target, symbol)`` pairs for the CPU platform, once per process; False
    when the library is not built."""
    library = _library()
    if library is None:
        return False
    for target, symbol in handlers:
        jax.ffi.register_ffi_target(
            target, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu"
        )
    return True


def _kernel_modules() -> tuple:
    """Every kernel module with handlers in the library (imported here, not at the top: they
    import this module)."""
    from kernels.ms_deform_attn import cpu as msda
    from kernels.window_attention import cpu as window_attention

    return msda, window_attention


def register_all() -> bool:
    """Register every native kernel's handlers (for programs lowered elsewhere that call them,
    such as deserialised exports); False when the library is not built."""
    return all(module.is_available() for module in _kernel_modules())


def ffi_targets() -> tuple[str, ...]:
    """The FFI target names of every native handler (a lowered program may call them; jax.export
    must be told to accept them)."""
    return tuple(target for module in _kernel_modules() for target in module.FFI_TARGETS)
