"""YouTube-VIS 2021 as a TFDS dataset ``ytvis_2021`` (the TFDS catalog's ``youtube_vis`` is 2019).

    tfds build ov2seg_jax/data/tfds/ytvis_2021.py --manual_dir datasets/ytvis_2021 \
        --data_dir DATA_DIR

Only train has public annotations; valid and test are stored without ground truth.
"""

from __future__ import annotations

from ov2seg_jax.data.tfds.builder import SplitLayout, VideoFolderBuilder, layout_text

LAYOUT = (
    SplitLayout("train", "train.json", "train/JPEGImages", required=True),
    SplitLayout("valid", "valid.json", "valid/JPEGImages", required=False),
    SplitLayout("test", "test.json", "test/JPEGImages", required=False),
)


class Ytvis2021(VideoFolderBuilder):
    """YouTube-VIS 2021: 40 categories, no partition (overall AP only)."""

    name = "ytvis_2021"
    LAYOUT = LAYOUT
    DESCRIPTION = (
        "YouTube-VIS 2021: whole videos (JPEG frames as stored), per-track compressed RLE "
        "masks, category ids."
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download YouTube-VIS 2021 (https://youtube-vos.org/dataset/vis/) and point "
        f"--manual_dir at the folder holding: {layout_text(LAYOUT)} (the original's "
        "datasets/ytvis_2021)."
    )
