"""On-disk cache of text classifiers.

A classifier is determined by the text encoder, the cleaned vocabulary and the prompt templates, so
the cache key is a canonical JSON of those three; files are ``<sha256 of the key>.npy``. The cache
folder is, in order of precedence: the ``cache_dir`` argument, the ``OV2SEG_CACHE`` environment
variable (the folder itself, not a parent), ``~/.cache/ov2seg_jax/classifiers``. Files are written
to a temporary name in the same folder and renamed into place, so concurrent writers and
interrupted runs never leave a truncated ``.npy`` under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence

import numpy as np

from ov2seg_jax.atomic_file import atomic_write

CACHE_ENV_VAR = "OV2SEG_CACHE"
_KEY_VERSION = 1


def default_cache_dir() -> str:
    """The classifier cache folder: ``$OV2SEG_CACHE`` or ``~/.cache/ov2seg_jax/classifiers``."""
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return os.path.expanduser(env)
    return os.path.join(os.path.expanduser("~"), ".cache", "ov2seg_jax", "classifiers")


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> str:
    """``cache_dir`` as a string, or the default folder when it is None."""
    return default_cache_dir() if cache_dir is None else os.path.expanduser(os.fspath(cache_dir))


def cache_key(encoder_identity: str, names: Sequence[str], templates: Sequence[str]) -> str:
    """The sha256 hex digest naming the cached classifier for these inputs."""
    payload = {
        "version": _KEY_VERSION,
        "encoder": encoder_identity,
        "names": list(names),
        "templates": list(templates),
    }
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_path(cache_dir: str | os.PathLike[str] | None, key: str) -> str:
    """Where the classifier with cache key ``key`` is stored."""
    return os.path.join(resolve_cache_dir(cache_dir), f"{key}.npy")


def load_cached(
    cache_dir: str | os.PathLike[str] | None, key: str, num_rows: int | None = None
) -> np.ndarray | None:
    """The cached classifier for ``key``, or None on a miss.

    An unreadable or malformed file (wrong rank, dtype or row count) is treated as a miss, with a
    warning naming it; it is overwritten by the next :func:`save_cached`.
    """
    path = cache_path(cache_dir, key)
    if not os.path.isfile(path):
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        warnings.warn(f"ignoring unreadable cached classifier {path!r}: {exc}", stacklevel=2)
        return None
    if (
        array.ndim != 2
        or array.dtype != np.float32
        or (num_rows is not None and array.shape[0] != num_rows)
    ):
        warnings.warn(
            f"ignoring cached classifier {path!r} with shape {array.shape} and dtype {array.dtype}",
            stacklevel=2,
        )
        return None
    return array


def save_array_atomic(path: str | os.PathLike[str], array: np.ndarray) -> str:
    """Write ``array`` as ``.npy`` to exactly ``path`` (tmp file in the same folder + rename)."""
    path = os.fspath(path)
    with atomic_write(path, "wb") as stream:
        np.save(stream, array, allow_pickle=False)
    return path


def save_cached(cache_dir: str | os.PathLike[str] | None, key: str, array: np.ndarray) -> str:
    """Store ``array`` under ``key``; returns the file's path."""
    return save_array_atomic(cache_path(cache_dir, key), array)
