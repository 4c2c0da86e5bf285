"""Files that appear whole or not at all: written under a temporary name beside the target and
renamed over it at the end, so an interrupted run never leaves a partial file at ``path``."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO]:
    """``with atomic_write(path) as f: ...`` writes ``f`` to ``path`` when the block succeeds;
    on an error the temporary file is removed and ``path`` is left as it was.

    ``mode``: "w" (UTF-8 text) or "wb". The folder is created if needed.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".tmp-{os.path.basename(path)}-", dir=folder)
    try:
        with os.fdopen(handle, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
