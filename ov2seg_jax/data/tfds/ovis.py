"""OVIS (occluded video instance segmentation) as a TFDS dataset ``ovis``.

    tfds build ov2seg_jax/data/tfds/ovis.py --manual_dir datasets/OVIS --data_dir DATA_DIR

Only OVIS train has public annotations; valid and test are stored without ground truth.
"""

from __future__ import annotations

from ov2seg_jax.data.tfds.builder import SplitLayout, VideoFolderBuilder, layout_text

LAYOUT = (
    SplitLayout("train", "annotation_train.json", "train", required=False),
    SplitLayout("valid", "annotation_valid.json", "valid", required=False),
    SplitLayout("test", "annotation_test.json", "test", required=False),
)


class Ovis(VideoFolderBuilder):
    """OVIS: 25 categories, no partition (overall AP only)."""

    name = "ovis"
    LAYOUT = LAYOUT
    DESCRIPTION = (
        "OVIS occluded video instance segmentation: whole videos (JPEG frames as stored), "
        "per-track compressed RLE masks, category ids."
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download OVIS (https://songbai.site/ovis/) and point --manual_dir at the folder holding "
        f"any of: {layout_text(LAYOUT)} (the original's datasets/OVIS)."
    )
