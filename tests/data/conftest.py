"""Tiny fake copies of the real dataset layouts, written once per test session."""

from __future__ import annotations

import pytest

from data_prep import fake_layouts

VIDEO_DATASETS = ("lvvis_train", "lvvis_val", "ytvis_2019_train", "ytvis_2021_train", "ovis_train")


@pytest.fixture(scope="session")
def layouts_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A ``datasets/``-like root holding every registered layout (LVIS + COCO, videos)."""
    root = str(tmp_path_factory.mktemp("datasets"))
    fake_layouts.write_image_layout(root, "lvis_v1_train", num_images=6)
    fake_layouts.write_image_layout(root, "lvis_v1_val", num_images=2, seed=1)
    for i, name in enumerate(VIDEO_DATASETS):
        fake_layouts.write_video_layout(root, name, seed=i)
    return root
