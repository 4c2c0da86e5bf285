"""Rebuild a fixture's random state dict from its ``manifest.json`` (numpy only).

The fixtures of the original never store large weights: each state-dict entry is described by a
recipe (uniform draws from a seeded generator, constants, or values derived from metadata files).
This module follows that recipe exactly and can verify every entry against the stored sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence

import numpy as np

from ov2seg_jax.parity.paths import metadata_dir


class ManifestError(ValueError):
    """A manifest entry cannot be rebuilt or does not match its checksum."""


def _find_source(name: str, search_dirs: Sequence[str]) -> str:
    base = os.path.basename(name)
    for d in search_dirs:
        path = os.path.join(d, base)
        if os.path.exists(path):
            return path
    raise ManifestError(
        f"metadata file {base!r} (manifest source {name!r}) not found in {list(search_dirs)}"
    )


def _clip_text_classifier(path: str) -> np.ndarray:
    emb = np.load(path).astype(np.float32)  # (C, 512)
    w = np.concatenate([emb.T, np.zeros((emb.shape[1], 1), np.float32)], axis=1)
    norms = np.sqrt(np.sum(w * w, axis=0, keepdims=True, dtype=np.float32))
    return (w / np.maximum(norms, np.float32(1e-12))).astype(np.float32)


def _lvis_freq_weight(path: str) -> np.ndarray:
    with open(path) as f:
        cats = sorted(json.load(f), key=lambda c: c["id"])
    counts = np.asarray(
        [0 if c["frequency"] == "r" else c["image_count"] for c in cats], np.float32
    )
    return (counts ** np.float32(0.5)).astype(np.float32)


def swin_relative_position_index(window_size: int) -> np.ndarray:
    """index[n, m] = (y_n - y_m + w - 1) * (2w - 1) + (x_n - x_m + w - 1) over one window."""
    ys, xs = np.meshgrid(np.arange(window_size), np.arange(window_size), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    dy = ys[:, None] - ys[None, :] + window_size - 1
    dx = xs[:, None] - xs[None, :] + window_size - 1
    return (dy * (2 * window_size - 1) + dx).astype(np.int64)


def _derived(entry: dict, search_dirs: Sequence[str]) -> np.ndarray:
    rule = entry["rule"]
    shape = tuple(entry["shape"])
    if rule == "clip_text_classifier":
        out = _clip_text_classifier(_find_source(entry["source"], search_dirs))
    elif rule == "ones_last_zero":
        out = np.ones(shape, np.float32)
        out[-1] = 0.0
    elif rule == "values":
        out = np.asarray(entry["values"], np.float32)
    elif rule == "lvis_freq_weight":
        out = _lvis_freq_weight(_find_source(entry["source"], search_dirs))
    elif rule == "swin_relative_position_index":
        out = swin_relative_position_index(int(entry["window_size"]))
    else:
        raise ManifestError(f"entry {entry['key']!r}: unknown derived rule {rule!r}")
    if out.shape != shape:
        raise ManifestError(
            f"entry {entry['key']!r}: rule {rule!r} gave shape {out.shape}, manifest says {shape}"
        )
    return out.astype(entry["dtype"])


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(
        np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
    ).hexdigest()


def regenerate_state_dict(
    fixture_dir: str,
    *,
    metadata_dirs: Sequence[str] | None = None,
    verify: bool = True,
) -> dict[str, np.ndarray]:
    """Rebuild the state dict of ``fixture_dir/manifest.json`` in manifest order.

    Derived entries look for their source files in ``fixture_dir`` first, then ``metadata_dirs``
    (default: the shared metadata folder). With ``verify`` every entry's sha256 is checked.
    """
    path = os.path.join(fixture_dir, "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    seed = int(manifest["seed"])
    fp16 = bool(manifest.get("float16_rounding"))
    dirs = [fixture_dir, *(metadata_dirs if metadata_dirs is not None else [metadata_dir()])]
    state: dict[str, np.ndarray] = {}
    for i, entry in enumerate(manifest["entries"]):
        init, shape = entry["init"], tuple(entry["shape"])
        if init == "uniform":
            u = np.random.default_rng([seed, i]).random(shape)
            w = (entry["offset"] + entry["scale"] * (2.0 * u - 1.0)).astype(np.float32)
            if fp16:
                w = w.astype(np.float16).astype(np.float32)
            arr = w.astype(entry["dtype"])
        elif init == "const":
            arr = np.full(shape, entry["value"], dtype=entry["dtype"])
        elif init == "derived":
            arr = _derived(entry, dirs)
        else:
            raise ManifestError(f"{path}: entry {entry['key']!r} has unknown init {init!r}")
        if verify and "sha256" in entry and _sha256(arr) != entry["sha256"]:
            raise ManifestError(f"{path}: entry {i} {entry['key']!r} does not match its sha256")
        state[entry["key"]] = arr
    return state
