"""atomic_write: the file appears whole or not at all."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ov2seg_jax.atomic_file import atomic_write


def test_written_whole_and_folder_created(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    with atomic_write(path) as f:
        f.write("héllo")
    assert path.read_text(encoding="utf-8") == "héllo"
    with atomic_write(tmp_path / "a.npy", "wb") as f:
        np.save(f, np.arange(3))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.arange(3))
    assert sorted(os.listdir(tmp_path)) == ["a.npy", "sub"]  # no temporary files left


def test_an_error_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_write(path) as f:
        f.write("new, half")
        raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]
    with pytest.raises(ValueError, match="mode"), atomic_write(path, "a"):
        pass
