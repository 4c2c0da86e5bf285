"""The persistent compilation cache folder: keyed by the native library's build, off when empty."""

from __future__ import annotations

import hashlib
import os

import jax

from kernels import native_library
from ov2seg_jax.compile_cache import enable_compilation_cache, native_library_tag


def test_cache_folder_is_keyed_by_the_native_library(tmp_path) -> None:
    path = native_library.library_path()
    expected = "no-native"
    if path is not None:
        with open(path, "rb") as f:
            expected = hashlib.sha256(f.read()).hexdigest()[:12]
    assert native_library_tag() == expected
    before = jax.config.jax_compilation_cache_dir
    try:
        assert enable_compilation_cache("") is None
        assert jax.config.jax_compilation_cache_dir == before
        folder = enable_compilation_cache(str(tmp_path / "xla"))
        assert folder == os.path.join(str(tmp_path / "xla"), expected)
        assert os.path.isdir(folder)
        assert jax.config.jax_compilation_cache_dir == folder
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
