"""LV-VIS (train and val with annotations; test without) as a TFDS dataset ``lvvis``.

tfds build ov2seg_jax/data/tfds/lvvis.py --manual_dir datasets/LVVIS --data_dir DATA_DIR
python -m data_prep.prepare_tfds --dataset lvvis --manual-dir datasets/LVVIS --data-dir DATA_DIR
"""

from __future__ import annotations

from ov2seg_jax.data.tfds.builder import SplitLayout, VideoFolderBuilder, layout_text

LAYOUT = (
    SplitLayout("train", "train/train_instances.json", "train/JPEGImages", required=True),
    SplitLayout("val", "val/val_instances.json", "val/JPEGImages", required=True),
    SplitLayout("test", "test/test_instances.json", "test/JPEGImages", required=False),
)


class Lvvis(VideoFolderBuilder):
    """LV-VIS: 1,196 categories with ``partition`` (0/1 base, 2/3 novel)."""

    name = "lvvis"
    LAYOUT = LAYOUT
    DESCRIPTION = (
        "LV-VIS large-vocabulary video instance segmentation: whole videos (JPEG frames as "
        "stored), per-track compressed RLE masks, category ids with the LV-VIS partition."
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download LV-VIS (https://github.com/haochenheheda/LVVIS) and point --manual_dir at the "
        f"folder holding: {layout_text(LAYOUT)} (the original's datasets/LVVIS)."
    )
