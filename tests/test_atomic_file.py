"""atomic_write: the file appears whole or not at all."""

from __future__ import annotations

import os
import stat

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


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_files_get_the_mode_a_plain_open_gives(tmp_path, umask):
    """Every writer of the write path, under two umasks: the mode of ``open(path, "w")``."""
    from ov2seg_jax.inference.predict_video import _write_text
    from ov2seg_jax.inference.results import write_results
    from ov2seg_jax.vocabulary.cache import save_array_atomic

    old = os.umask(umask)
    try:
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
        with atomic_write(tmp_path / "a.txt") as f:
            f.write("x")
        with atomic_write(tmp_path / "b.bin", "wb") as f:
            f.write(b"x")
        write_results(str(tmp_path / "results.json"), [])
        _write_text(str(tmp_path / "tracks.txt"), "x")
        save_array_atomic(tmp_path / "c.npy", np.zeros(2, np.float32))
    finally:
        os.umask(old)
    want = 0o666 & ~umask
    assert stat.S_IMODE(os.stat(tmp_path / "plain.txt").st_mode) == want
    for name in ("a.txt", "b.bin", "results.json", "tracks.txt", "c.npy"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == want, name


def test_the_file_then_its_folder_are_synced_around_the_rename(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    path.write_text("old")
    calls = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            calls.append(("folder", st.st_ino, path.read_text()))
        else:
            calls.append(("file", st.st_size, path.read_text()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    with atomic_write(path) as f:
        f.write("new text")
    # The file's 8 bytes are synced while the target still holds the old text; the folder
    # after the rename.
    assert calls == [
        ("file", len("new text"), "old"),
        ("folder", os.stat(tmp_path).st_ino, "new text"),
    ]
