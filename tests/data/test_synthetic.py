"""Tests for the built-in synthetic dataset (ov2seg_jax.data.synthetic, data_prep.build_synthetic)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from data_prep import build_synthetic
from ov2seg_jax.data import synthetic as syn
from ov2seg_jax.data.video_json import load_video_dataset
from ov2seg_jax.evaluation import evaluate_video
from ov2seg_jax.vocabulary import load_vocabulary
from ov2seg_jax.vocabulary.compositional import encode_names

TINY = syn.SyntheticSpec(
    num_train_videos=6,
    num_val_videos=8,
    num_frames=4,
    height=64,
    width=64,
    min_size=10,
    max_size=22,
    size_step=4,
    max_speed=2.0,
    text_dim=32,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return syn.build_synthetic_dataset(tmp_path_factory.mktemp("synth") / "ds", TINY, seed=3)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _load_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------------------- categories


def test_categories_and_latin_square_split():
    cats = syn.categories()
    assert [c["id"] for c in cats] == list(range(1, 65))
    assert len(set(syn.category_names())) == 64
    assert syn.category_names()[0] == "red circle" and syn.category_names()[-1] == "white ring"
    novel = syn.novel_pairs()
    assert len(novel) == 16 and len(set(novel)) == 16
    base = [(c["colour"], c["shape"]) for c in cats if c["partition"] == syn.PARTITION_BASE]
    assert len(base) == 48 and not set(base) & set(novel)
    for i, group in ((0, [p[0] for p in novel]), (1, [p[1] for p in novel])):
        assert set(Counter(group).values()) == {2}  # each colour / shape: exactly 2 novel pairs
        assert set(Counter(p[i] for p in base).values()) == {6}  # and 6 base pairs
    # The documented rule: colour 0 (red) is novel with shapes 2 and 5 (triangle, diamond).
    assert novel[:2] == (("red", "triangle"), ("red", "diamond"))
    assert syn.PARTITION_BASE in (0, 1) and syn.PARTITION_NOVEL in (2, 3)  # LV-VIS codes


def test_category_assignment_at_default_size():
    spec = syn.SyntheticSpec()
    novel = set(syn.split_category_ids(syn.PARTITION_NOVEL))
    train = syn.assign_categories(spec, 0, "train")
    val = syn.assign_categories(spec, 0, "val")
    assert len(train) == 300 and len(val) == 48
    for videos in (train, val):
        assert all(1 <= len(v) <= 4 for v in videos)
    train_counts = Counter(c for v in train for c in v)
    assert not novel & set(train_counts)
    assert set(train_counts) == set(syn.split_category_ids(syn.PARTITION_BASE))
    assert max(train_counts.values()) - min(train_counts.values()) <= 1  # balanced
    val_counts = Counter(c for v in val for c in v)
    assert min(val_counts[c] for c in novel) >= 3  # every novel category several times
    total = sum(val_counts.values())
    assert abs(sum(val_counts[c] for c in novel) - total / 2) <= 0.5


# ---------------------------------------------------------------------------- rendering


def test_shape_areas_and_box_by_hand():
    # Size 10 centred on (20, 20): pixel centres are at half-integer offsets from the centre.
    # circle: offsets (a, b) with a^2 + b^2 <= 25 -> 2 * (10 + 10 + 8 + 8 + 4) = 80 pixels;
    # square (|a|, |b| <= 4.25): 8 x 8 = 64; diamond (|a| + |b| <= 5): 2 * (10+8+6+4+2) = 60.
    masks = {s: syn.shape_mask(s, (20.0, 20.0), 10.0, 40, 40) for s in syn.SHAPES}
    areas = {s: int(m.sum()) for s, m in masks.items()}
    assert (areas["circle"], areas["square"], areas["diamond"]) == (80, 64, 60)
    assert areas["ring"] < areas["circle"] and areas["star"] < areas["hexagon"]
    assert len({m.tobytes() for m in masks.values()}) == 8  # eight different pixel sets
    fields = syn.track_annotation(syn.shape_mask("circle", (20.0, 20.0), 10.0, 40, 40)[None])
    assert fields["areas"] == [80] and fields["bboxes"] == [[15.0, 15.0, 10.0, 10.0]]


def test_bounce_stays_inside_and_reflects():
    obj = syn.SceneObject(1, (230, 30, 30), 10.0, (10.0, 7.0), (3.0, -1.0))
    # x: lo 5, hi 20 (width 25): 10 + 3 * 5 = 25, reflected at 20 -> 15.
    # y: lo 5, hi 25 (height 30): 7 - 5 = 2, reflected at 5 -> 8.
    assert syn.object_centre(obj, 5, 30, 25) == pytest.approx((15.0, 8.0))
    # t = 10: x = 40 -> 20 - (40 - 20) = 0 -> reflected again at 5 -> 10.
    assert syn.object_centre(obj, 10, 30, 25)[0] == pytest.approx(10.0)
    for t in range(40):
        x, y = syn.object_centre(obj, t, 30, 25)
        assert 5.0 <= x <= 20.0 and 5.0 <= y <= 25.0


def _scene(objects, frames=2, size=64):
    return syn.Scene(tuple(objects), size, size, frames, background_seed=7)


def test_full_occlusion_gives_null_segmentation():
    small = syn.SceneObject(1, (230, 30, 30), 10.0, (20.0, 20.0), (0.0, 0.0))  # red circle
    # Blue square (id 18) on top: covers the circle in frame 0, moves off by frame 1.
    big = syn.SceneObject(18, (40, 80, 240), 24.0, (20.0, 20.0), (20.0, 0.0))
    scene = _scene([small, big])
    masks = syn.visible_masks(scene)
    assert masks[0, 0].sum() == 0 and masks[0, 1].sum() == 80
    fields = syn.track_annotation(masks[0])
    assert fields["segmentations"][0] is None and fields["areas"][0] is None
    assert fields["bboxes"][0] is None and fields["areas"][1] == 80
    frames, _ = syn.render_scene(scene)
    assert np.abs(frames[0, 20, 20].astype(int) - (40, 80, 240)).max() <= syn.NOISE_AMPLITUDE


def test_visible_masks_are_disjoint_and_cover_the_union():
    for index in range(4):
        scene = syn.video_scene(TINY, 3, "val", index)
        full = syn.full_masks(scene)
        visible = syn.occlude(full)
        assert visible.sum(axis=0).max() <= 1
        np.testing.assert_array_equal(visible.any(axis=0), full.any(axis=0))
        # The top object is never covered.
        np.testing.assert_array_equal(visible[-1], full[-1])


def test_masks_agree_with_pixels_before_encoding():
    checked = 0
    for split, index in (("train", 0), ("train", 1), ("val", 0), ("val", 5)):
        scene = syn.video_scene(TINY, 3, split, index)
        frames, masks = syn.render_scene(scene)
        for colour in {o.colour for o in scene.objects}:
            near = np.abs(frames.astype(int) - colour).max(axis=-1) <= syn.NOISE_AMPLITUDE
            same = [i for i, o in enumerate(scene.objects) if o.colour == colour]
            # Pixels of this colour are exactly the visible pixels of the objects painted with it.
            np.testing.assert_array_equal(near, masks[same].any(axis=0))
            checked += 1
        background = ~masks.any(axis=0)
        rgb = frames[background].astype(int)
        assert (rgb.max(axis=-1) - rgb.min(axis=-1)).max() <= 40  # grey, far from the colours
        assert rgb.max() <= 140
    assert checked >= 8


# ---------------------------------------------------------------------------- files


def test_layout_and_json_fields(tiny):
    for split in syn.SPLITS:
        data = _load_json(tiny[f"{split}_json"])
        assert len(data["videos"]) == TINY.num_videos(split)
        assert data["categories"] == [
            {"id": c["id"], "name": c["name"], "partition": c["partition"]}
            for c in syn.categories()
        ]
        for video in data["videos"]:
            assert video["length"] == len(video["file_names"]) == TINY.num_frames
            assert (video["height"], video["width"]) == (64, 64)
            for name in video["file_names"]:
                with Image.open(os.path.join(tiny[f"{split}_images"], name)) as img:
                    assert img.size == (64, 64) and img.mode == "RGB"
        for ann in data["annotations"]:
            assert ann["iscrowd"] == 0 and len(ann["segmentations"]) == TINY.num_frames
            assert len(ann["areas"]) == len(ann["bboxes"]) == TINY.num_frames
        dataset = load_video_dataset(tiny[f"{split}_json"], tiny[f"{split}_images"])
        assert dataset.has_annotations and dataset.category_names == tuple(syn.category_names())
        assert all(os.path.isfile(p) for v in dataset.videos for p in v.frame_paths)


def test_split_property_on_disk(tiny):
    novel = set(syn.split_category_ids(syn.PARTITION_NOVEL))
    train = _load_json(tiny["train_json"])["annotations"]
    val = _load_json(tiny["val_json"])["annotations"]
    assert train and not novel & {a["category_id"] for a in train}
    assert novel & {a["category_id"] for a in val}
    manifest = syn.read_manifest(tiny["root"])
    assert manifest["seed"] == 3 and manifest["spec"] == dataclasses.asdict(TINY)
    assert manifest["summary"]["val"]["instances"] == len(val)


def test_rle_decodes_to_rendered_masks_and_jpeg_keeps_colours(tiny):
    data = _load_json(tiny["val_json"])
    for video in data["videos"][:4]:
        scene = syn.video_scene(TINY, 3, "val", video["id"] - 1)
        frames, masks = syn.render_scene(scene)
        anns = [a for a in data["annotations"] if a["video_id"] == video["id"]]
        assert [a["category_id"] for a in anns] == [o.category_id for o in scene.objects]
        for obj, ann, obj_masks in zip(scene.objects, anns, masks, strict=True):
            for t, seg in enumerate(ann["segmentations"]):
                assert seg is not None  # min_visible_fraction keeps objects in view
                np.testing.assert_array_equal(mask_utils.decode(seg).astype(bool), obj_masks[t])
                assert ann["areas"][t] == obj_masks[t].sum()
                path = os.path.join(tiny["val_images"], video["file_names"][t])
                jpeg = np.asarray(Image.open(path)).astype(int)
                # JPEG quality 95, no chroma subsampling: measured mean error ~3 levels.
                err = np.abs(jpeg[obj_masks[t]] - obj.colour).mean()
                assert err < 10, (video["id"], t, err)
                assert np.abs(jpeg - frames[t]).mean() < 4


def test_classifier_and_vocabulary_files(tiny):
    classifier = np.load(tiny["classifier"])
    np.testing.assert_array_equal(classifier, encode_names(syn.category_names(), dim=32))
    assert load_vocabulary(tiny["categories_txt"]) == syn.category_names()
    assert _load_json(tiny["categories_json"]) == syn.categories()


def test_perfect_predictions_score_ap_one(tiny):
    gt = _load_json(tiny["val_json"])
    novel = set(syn.split_category_ids(syn.PARTITION_NOVEL))
    perfect = [
        {
            "video_id": a["video_id"],
            "category_id": a["category_id"],
            "score": 1.0,
            "segmentations": a["segmentations"],
        }
        for a in gt["annotations"]
    ]
    result = evaluate_video(gt, perfect)
    assert result.stats[0] == pytest.approx(1.0)
    assert result.stats_base[0] == pytest.approx(1.0)
    assert result.stats_novel[0] == pytest.approx(1.0)
    # Without the novel predictions novel AP drops to 0 and base AP stays 1.
    base_only = [r for r in perfect if r["category_id"] not in novel]
    result = evaluate_video(gt, base_only)
    assert result.stats_base[0] == pytest.approx(1.0)
    assert result.stats_novel[0] == pytest.approx(0.0)


# ---------------------------------------------------------------------------- building


def test_deterministic_bytes(tmp_path):
    spec = dataclasses.replace(TINY, num_train_videos=2, num_val_videos=2)
    a = syn.build_synthetic_dataset(tmp_path / "a", spec, seed=3)
    b = syn.build_synthetic_dataset(tmp_path / "b", spec, seed=3)
    c = syn.build_synthetic_dataset(tmp_path / "c", spec, seed=4)
    for key in ("train_json", "val_json", "classifier", "categories_json"):
        assert _read(a[key]) == _read(b[key])
    assert _read(a["val_json"]) != _read(c["val_json"])
    for split in syn.SPLITS:
        for video in _load_json(a[f"{split}_json"])["videos"]:
            for name in video["file_names"]:
                assert _read(os.path.join(a[f"{split}_images"], name)) == _read(
                    os.path.join(b[f"{split}_images"], name)
                )


def test_idempotent_rebuild_and_interrupted_build(tmp_path):
    spec = dataclasses.replace(TINY, num_train_videos=1, num_val_videos=1)
    root = tmp_path / "ds"
    paths = syn.build_synthetic_dataset(root, spec, seed=0)
    stamp = os.stat(paths["manifest"]).st_mtime_ns
    assert syn.build_synthetic_dataset(root, spec, seed=0) == paths
    assert os.stat(paths["manifest"]).st_mtime_ns == stamp  # nothing rewritten
    # A build interrupted before the final move leaves only a hidden work folder (of a process
    # that is gone): the dataset is not complete, and the next build redoes it and cleans up.
    shutil.move(root, tmp_path / ".ds.building-4194305")
    (tmp_path / ".ds.building-4194305" / "manifest.json").unlink()
    assert not syn.is_complete(root, spec, 0)
    syn.build_synthetic_dataset(root, spec, seed=0)
    assert syn.is_complete(root, spec, 0)
    # Without its manifest a folder is not recognised as a dataset and is left alone.
    os.remove(paths["manifest"])
    with pytest.raises(ValueError, match="refusing to overwrite"):
        syn.build_synthetic_dataset(root, spec, seed=0)
    shutil.rmtree(root)
    syn.build_synthetic_dataset(root, spec, seed=0)
    # Another spec replaces the dataset.
    other = dataclasses.replace(spec, num_val_videos=2)
    syn.build_synthetic_dataset(root, other, seed=0)
    assert syn.is_complete(root, other, 0) and not syn.is_complete(root, spec, 0)
    assert len(_load_json(paths["val_json"])["videos"]) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no work folders left behind


def test_refuses_to_overwrite_other_folders(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep")
    with pytest.raises(ValueError, match="refusing to overwrite"):
        syn.build_synthetic_dataset(tmp_path / "mine", TINY)
    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_objects": 9}, "distinct sizes"),
        ({"min_size": 30, "max_size": 20}, "min_size"),
        ({"height": 16}, "min\\(height, width\\)"),
        ({"num_frames": 0}, "num_frames"),
        ({"val_novel_fraction": 1.5}, "val_novel_fraction"),
        ({"jpeg_quality": 2.5}, "jpeg_quality"),
    ],
)
def test_bad_spec_is_named(fields, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(TINY, **fields)


def test_cli_builds_and_reports(tmp_path, capsys):
    root = tmp_path / "cli"
    argv = ["--root", str(root), "--train-videos", "2", "--val-videos", "2", "--size", "64"]
    argv += ["--frames", "3", "--text-dim", "16"]
    assert build_synthetic.main(argv) == 0
    out = capsys.readouterr().out
    assert "train: 2 videos, 6 frames" in out and "white hexagon" in out
    manifest = syn.read_manifest(root)
    assert manifest["spec"]["height"] == 64 and manifest["spec"]["min_size"] == 9
    assert np.load(root / "text_classifier.npy").shape == (64, 16)
    assert build_synthetic.main(["--root", str(tmp_path / "x"), "--frames", "0"]) == 2
    assert "num_frames" in capsys.readouterr().err
