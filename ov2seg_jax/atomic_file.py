"""Files that appear whole or not at all, and stay so after a crash.

The recipe for a durable replacement: write under a temporary name beside the target, ``fsync``
the file, rename it over the target, ``fsync`` the folder (so the rename itself is on disk). An
interrupted run never leaves a partial file at ``path``, and after a power loss or kernel crash
``path`` holds either the old contents or the new ones, never an empty file.

The temporary file is created with ``os.open(..., 0o666)``, so the kernel applies the process
umask exactly as for a plain ``open(path, "w")`` (``tempfile.mkstemp`` would give 0600, which the
rename keeps, and colleagues could not read shared results).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import IO


def _create_beside(path: str) -> tuple[int, str]:
    folder, name = os.path.split(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".tmp-{name}-{secrets.token_hex(4)}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def fsync_folder(folder: str) -> None:
    """Make the entries of ``folder`` (a rename into it) durable; a no-op where folders cannot
    be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO]:
    """``with atomic_write(path) as f: ...`` writes ``f`` to ``path`` when the block succeeds;
    on an error the temporary file is removed and ``path`` is left as it was.

    ``mode``: "w" (UTF-8 text) or "wb". The folder is created if needed.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    handle, tmp = _create_beside(path)
    try:
        with os.fdopen(handle, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_folder(folder)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
