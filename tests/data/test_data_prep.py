"""The dataset command-line tools (data_prep.verify_dataset, data_prep.make_lvis_norare)."""

from __future__ import annotations

import json
import os
import shutil

from data_prep import fake_layouts, make_lvis_norare, verify_dataset
from ov2seg_jax.data import registry


def test_verify_prints_counts_and_passes_on_a_clean_layout(layouts_root, capsys):
    assert verify_dataset.main(["--dataset", "lvvis_train", "--root", layouts_root]) == 0
    out = capsys.readouterr().out
    # write_video_layout: 3 videos of 4 frames with 1, 2, 3 instances; 8 categories, 2 novel.
    assert "videos: 3, frames: 12" in out
    assert "instances: 6" in out
    assert "categories: 8 (6 base, 2 novel)" in out
    assert "problems: none" in out


def test_verify_finds_broken_files_and_bad_names(tmp_path, capsys):
    root = str(tmp_path)
    fake_layouts.write_video_layout(root, "ytvis_2019_train", num_videos=2)
    frames = registry.resolve("ytvis_2019_train", root).image_root
    os.remove(os.path.join(frames, "video000", "00001.jpg"))
    with open(os.path.join(frames, "video001", "00002.jpg"), "wb") as f:
        f.write(b"garbage")
    assert verify_dataset.main(["--dataset", "ytvis_2019_train", "--root", root]) == 1
    out = capsys.readouterr().out
    assert "'missing_image': 1" in out and "'unreadable_image': 1" in out
    assert verify_dataset.main(["--dataset", "no_such_set", "--root", root]) == 2
    assert "unknown dataset 'no_such_set'" in capsys.readouterr().err


def test_make_lvis_norare_writes_what_the_readers_derive(layouts_root, tmp_path):
    root = str(tmp_path)
    shutil.copytree(os.path.join(layouts_root, "lvis"), os.path.join(root, "lvis"))
    os.symlink(os.path.join(layouts_root, "coco"), os.path.join(root, "coco"))
    derived = registry.load_dataset("lvis_v1_train_norare", root)
    assert make_lvis_norare.main(["--root", root]) == 0
    with open(os.path.join(root, "lvis", "lvis_v1_train_norare.json")) as f:
        data = json.load(f)
    rare = {c["id"] for c in data["categories"] if c["frequency"] == "r"}
    assert rare and not any(a["category_id"] in rare for a in data["annotations"])
    assert len(data["categories"]) == 6 and len(data["images"]) == 6
    from_file = registry.load_dataset("lvis_v1_train_norare", root)
    assert from_file.json_path.endswith("lvis_v1_train_norare.json")
    assert from_file.records == derived.records
