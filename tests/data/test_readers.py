"""Dataset readers on fake copies of each real layout (ov2seg_jax.data.{registry,lvis,video_json})."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from data_prep import fake_layouts
from ov2seg_jax.data import registry
from ov2seg_jax.data.category_table import partition_of
from ov2seg_jax.data.lvis import image_file_name
from ov2seg_jax.data.masks import decode_segmentation
from ov2seg_jax.data.video_json import frame_file_name, load_video_dataset
from tests.data.conftest import VIDEO_DATASETS


def _check_masks_select_colours(ds) -> int:
    """Each decoded mask covers exactly the pixels of its instance's colour (JPEG tolerance)."""
    checked = 0
    for rec in ds.records:
        for t, path in enumerate(rec.frame_paths):
            img = np.asarray(Image.open(path).convert("RGB")).astype(int)
            assert img.shape[:2] == (rec.height, rec.width)
            for j, track in enumerate(rec.instances):
                colour = np.asarray(fake_layouts.instance_colour(j))
                painted = np.abs(img - colour).sum(-1) <= 24
                seg = track.segmentations[t]
                if seg is None:
                    assert not painted.any()
                    continue
                np.testing.assert_array_equal(
                    decode_segmentation(seg, rec.height, rec.width), painted
                )
                checked += 1
    return checked


@pytest.mark.parametrize("name", VIDEO_DATASETS)
def test_video_layouts(layouts_root, name):
    ds = registry.load_dataset(name, layouts_root)
    assert ds.is_video and len(ds.records) == 3 and ds.problems == {}
    assert ds.category_ids == tuple(2 * i + 1 for i in range(8))
    assert ds.partition == tuple("novel" if i % 4 == 3 else "base" for i in range(8))
    with open(registry.resolve(name, layouts_root).json) as f:
        data = json.load(f)
    # Contiguous index = position of the id in the sorted category list.
    for rec, video in zip(ds.records, data["videos"], strict=True):
        anns = [a for a in data["annotations"] if a["video_id"] == video["id"]]
        assert [ds.category_ids[t.category] for t in rec.instances] == [
            a["category_id"] for a in anns
        ]
        assert rec.frame_paths[0].startswith(registry.resolve(name, layouts_root).image_root)
    assert _check_masks_select_colours(ds) >= 10


def test_lvvis_base_only_drops_novel_tracks(layouts_root):
    full = registry.load_dataset("lvvis_train", layouts_root)
    base = registry.load_dataset("lvvis_train", layouts_root, base_only=True)
    novel = {i for i, p in enumerate(full.partition) if p == "novel"}
    n_novel = sum(t.category in novel for r in full.records for t in r.instances)
    assert n_novel > 0
    assert not any(t.category in novel for r in base.records for t in r.instances)
    n_full = sum(len(r.instances) for r in full.records)
    assert sum(len(r.instances) for r in base.records) == n_full - n_novel
    assert all(base.frequency_weight[c] == 0 for c in novel)


def test_lvis_norare_from_the_full_train_json(layouts_root):
    """No lvis_v1_train_norare.json: derived from lvis_v1_train.json, rare annotations removed."""
    assert not os.path.exists(os.path.join(layouts_root, "lvis/lvis_v1_train_norare.json"))
    full = registry.load_dataset("lvis_v1_train", layouts_root)
    norare = registry.load_dataset("lvis_v1_train_norare", layouts_root)
    assert not full.is_video and len(full.records) == 6
    # Categories: ids 1, 3, ..., 11 with frequency r, c, f, r, c, f; all kept, in id order.
    assert norare.category_ids == full.category_ids == (1, 3, 5, 7, 9, 11)
    assert norare.partition == ("novel", "base", "base", "novel", "base", "base")
    for rec in norare.records:
        assert all(t.category not in (0, 3) for t in rec.instances)
        assert len(rec.frame_paths) == 1 and os.path.isfile(rec.frame_paths[0])
    # Federated weights: image_count ** 0.5 (image_count = 10 * (i + 1)), 0 for rare.
    expected = [0, 20**0.5, 30**0.5, 0, 50**0.5, 60**0.5]
    np.testing.assert_allclose(norare.frequency_weight, expected, rtol=1e-6)
    dropped = len(full.records) - len(norare.records)
    assert norare.problems.get("image_without_annotations", 0) == dropped
    assert _check_masks_select_colours(full) >= 10
    val = registry.load_dataset("lvis_v1_val", layouts_root)
    assert len(val.records) == 2


def test_image_and_frame_file_names():
    assert image_file_name({"file_name": "COCO_val2014_000000000042.jpg"}) == "000000000042.jpg"
    assert image_file_name({"file_name": "train2017/x.jpg"}) == "train2017/x.jpg"
    url = "http://images.cocodataset.org/val2017/000000000139.jpg"
    assert image_file_name({"coco_url": url}) == "val2017/000000000139.jpg"
    assert image_file_name({}) is None
    assert frame_file_name("a\\b\\vid\\00001.jpg") == "vid/00001.jpg"
    assert frame_file_name("vid/00001.jpg") == "vid/00001.jpg"


def test_partition_codes():
    assert [partition_of({"partition": p}) for p in (0, 1, 2, 3)] == [
        "base",
        "base",
        "novel",
        "novel",
    ]
    assert partition_of({"partition": "novel"}) == "novel"
    assert partition_of({"partition": "base"}) == "base"
    assert partition_of({"frequency": "r"}) == "novel"
    assert partition_of({"frequency": "f"}) == "base"


def test_unknown_dataset_names_the_known_ones(tmp_path):
    with pytest.raises(KeyError, match="lvvis_train"):
        registry.resolve("lvvis_tran", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="train_instances.json"):
        registry.load_dataset("lvvis_format", str(tmp_path / "nothing"))


def test_bad_annotations_are_skipped_and_counted(tmp_path):
    root = str(tmp_path)
    data = fake_layouts.write_video_layout(root, "lvvis_format", num_videos=3)
    data["annotations"].append(
        {"id": 99, "video_id": 1, "category_id": 1000, "segmentations": [None] * 4, "iscrowd": 0}
    )
    data["annotations"].append(
        {"id": 98, "video_id": 1, "category_id": 1, "segmentations": [None] * 3, "iscrowd": 0}
    )
    data["videos"].append({"id": 50, "file_names": [], "height": 48, "width": 64})
    data["videos"].append({"id": 51, "height": 48, "width": 64})
    with open(registry.resolve("lvvis_format", root).json, "w") as f:
        json.dump(data, f)
    ds = registry.load_dataset("lvvis_format", root)
    assert len(ds.records) == 3
    assert ds.problems == {
        "unknown_category": 1,
        "bad_segmentations": 1,
        "empty_video": 1,
        "bad_video_entry": 1,
    }


def test_malformed_json_names_the_file(tmp_path):
    entry = registry.resolve("lvvis_format", str(tmp_path))
    os.makedirs(os.path.dirname(entry.json))
    with open(entry.json, "w") as f:
        f.write("{not json")
    with pytest.raises(ValueError, match="train_instances.json is not valid JSON"):
        registry.load_dataset("lvvis_format", str(tmp_path))
    with open(entry.json, "w") as f:
        json.dump({"videos": [], "categories": []}, f)
    with pytest.raises(ValueError, match="'annotations' is missing"):
        registry.load_dataset("lvvis_format", str(tmp_path))


def test_video_listing_reader_still_reads_the_same_files(layouts_root):
    entry = registry.resolve("lvvis_val", layouts_root)
    listing = load_video_dataset(entry.json, entry.image_root)
    records = registry.load_dataset("lvvis_val", layouts_root)
    assert [v.frame_paths for v in listing.videos] == [r.frame_paths for r in records.records]
