"""Preparing a dataset of this package's builders (what ``data_prep.prepare_tfds`` and the data
stage of ``--mode all`` call)."""

from __future__ import annotations

import os
import shutil

import tensorflow_datasets as tfds

from ov2seg_jax.data.synthetic import read_manifest
from ov2seg_jax.data.tfds.builder import DEFAULT_FILE_FORMAT, LayoutError, check_layout


def folder_size(path: str) -> int:
    """Bytes of the files under ``path``."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def _stale(builder, name: str, manual_dir: str) -> bool:
    """A prepared synthetic set built from another synthetic build than ``manual_dir``'s."""
    if name != "ov2seg_synthetic" or not manual_dir or not builder.is_prepared():
        return False
    return (builder.info.metadata or {}).get("manifest") != read_manifest(manual_dir)


def prepare(
    name: str,
    manual_dir: str,
    data_dir: str,
    *,
    file_format: str = DEFAULT_FILE_FORMAT,
    overwrite: bool = False,
):
    """Prepare dataset ``name`` from ``manual_dir`` into ``data_dir``; returns its builder.

    The layout is checked first (LayoutError naming the missing file); a prepared dataset is
    kept unless ``overwrite`` (or, for the synthetic set, unless it holds another build).
    """
    from ov2seg_jax.data.tfds import BUILDERS

    if name not in BUILDERS:
        raise LayoutError(f"unknown dataset {name!r}; known: {', '.join(sorted(BUILDERS))}")
    cls = BUILDERS[name]
    manual_dir = os.path.abspath(manual_dir) if manual_dir else ""
    if name != "ov2seg_synthetic":
        if not manual_dir:
            raise LayoutError(f"{name} needs a manual folder (the original's layout)")
        check_layout(manual_dir, cls.LAYOUT, name)
    elif manual_dir and read_manifest(manual_dir) is None:
        raise LayoutError(
            f"ov2seg_synthetic: {manual_dir} holds no synthetic build (no manifest.json written "
            "by data_prep.build_synthetic)"
        )
    builder = cls(data_dir=data_dir or None, file_format=file_format)
    if builder.is_prepared() and (overwrite or _stale(builder, name, manual_dir)):
        shutil.rmtree(builder.data_dir)
        builder = cls(data_dir=data_dir or None, file_format=file_format)
    tfds.display_progress_bar(True)
    config = tfds.download.DownloadConfig(manual_dir=manual_dir or None)
    builder.download_and_prepare(download_config=config)
    return builder
