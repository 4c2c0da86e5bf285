"""The built-in synthetic set (:mod:`ov2seg_jax.data.synthetic`) as a TFDS dataset
``ov2seg_synthetic``, the input of the default ``--mode all`` run.

    tfds build ov2seg_jax/data/tfds/synthetic.py --data_dir DATA_DIR
    tfds build ov2seg_jax/data/tfds/synthetic.py --manual_dir datasets/synthetic --data_dir DATA_DIR

With a manual folder holding a synthetic build (``python -m data_prep.build_synthetic``), that
build is stored, whatever its sizes; without one, the default set (300 + 48 videos, seed 0) is
rendered into the download folder first. The build's manifest (sizes and seed) is kept in the
metadata (``manifest``), so a prepared set says what it holds.
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from ov2seg_jax.data.synthetic import build_synthetic_dataset, read_manifest
from ov2seg_jax.data.tfds.builder import LayoutError, SplitLayout, VideoFolderBuilder

LAYOUT = (
    SplitLayout("train", "train/train_instances.json", "train/JPEGImages", required=True),
    SplitLayout("val", "val/val_instances.json", "val/JPEGImages", required=True),
)


class Ov2segSynthetic(VideoFolderBuilder):
    """64 colour x shape categories, 16 of them novel (partition 2) and seen only in val."""

    name = "ov2seg_synthetic"
    LAYOUT = LAYOUT
    DESCRIPTION = (
        "ov2seg-jax synthetic open-vocabulary videos: coloured shapes that move and occlude; "
        "whole videos (JPEG frames), per-track compressed RLE masks, category ids with partition."
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Optional: point --manual_dir at a folder built by `python -m data_prep.build_synthetic "
        "--root FOLDER`; without one the default synthetic set is rendered."
    )

    def source_root(self, dl_manager: tfds.download.DownloadManager) -> str:
        try:
            root = os.fspath(dl_manager.manual_dir)
        except AssertionError:  # no manual folder: render the default set
            root = os.path.join(os.fspath(dl_manager.download_dir), "ov2seg_synthetic_default")
            build_synthetic_dataset(root)
        manifest = read_manifest(root)
        if manifest is None:
            raise LayoutError(
                f"{self.name}: {root} holds no synthetic build (no manifest.json written by "
                "data_prep.build_synthetic)"
            )
        self.info.metadata["manifest"] = manifest
        return root
