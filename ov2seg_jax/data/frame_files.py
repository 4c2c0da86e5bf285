"""Frame addresses: a frame is a file path, or ``tfds-frame://<split>/<record>/<frame>`` for a
frame stored in a prepared TFDS split (see :mod:`ov2seg_jax.data.tfds.reader`).

Readers open every frame through :func:`open_frame`, so records built from a TFDS split go
through the same decoding (PIL) as records of the folder layouts and give the same pixels.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

SCHEME = "tfds-frame://"

_lock = threading.Lock()
_sources: dict[str, Callable[[int, int], bytes]] = {}


def register_source(key: str, read: Callable[[int, int], bytes]) -> str:
    """Make ``read(record, frame) -> encoded bytes`` reachable as ``<prefix>/<record>/<frame>``;
    returns the prefix. Registering a key again replaces its reader."""
    if "/" in key:
        raise ValueError(f"a frame source key may not contain '/': {key!r}")
    with _lock:
        _sources[key] = read
    return SCHEME + key


def open_frame(path: str) -> str | io.BytesIO:
    """What ``PIL.Image.open`` should open for ``path``: the path itself, or the stored bytes."""
    if not path.startswith(SCHEME):
        return path
    try:
        key, record, frame = path[len(SCHEME) :].split("/")
        read = _sources[key]
    except (ValueError, KeyError):
        raise FileNotFoundError(f"no open TFDS split holds frame {path}") from None
    return io.BytesIO(read(int(record), int(frame)))
