"""The training pipeline (ov2seg_jax.data.pipeline): contract, alignment, resume, sharding, bad data."""

from __future__ import annotations

import json
import os
import shutil

import ml_collections
import numpy as np
import pytest

from configs import ov2seg_r50_lvvis
from data_prep import fake_layouts
from ov2seg_jax.data import registry
from ov2seg_jax.data import synthetic as syn
from ov2seg_jax.data.pipeline import dataset_info, make_train_iterator


def _cfg(dataset: str, root: str, **kw) -> ml_collections.ConfigDict:
    """The default ``config.data`` (the LVIS recipe) at test sizes, with ``kw`` on top."""
    c = ov2seg_r50_lvvis.get_config().data
    c.update(
        dict(
            dataset=dataset,
            root=root,
            image_size=64,
            max_instances=4,
            num_parallel_calls=2,
            prefetch=1,
        )
    )
    c.update(kw)
    return c


def _take(it, n: int) -> list[dict[str, np.ndarray]]:
    return [next(it) for _ in range(n)]


def _assert_batches_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _assert_colour_aligned(image: np.ndarray, masks: np.ndarray, valid: np.ndarray) -> int:
    """Each valid mask covers exactly one palette colour's pixels, distinct masks distinct colours."""
    checked = 0
    img = image.astype(int)
    palette = [np.asarray(fake_layouts.instance_colour(j)) for j in range(8)]
    used = set()
    for m, v in zip(masks, valid, strict=True):
        if not v:
            assert not m.any()
            continue
        mean = img[m].mean(0)
        j = int(np.argmin([np.abs(mean - p).sum() for p in palette]))
        painted = np.abs(img - palette[j]).sum(-1) <= 24
        np.testing.assert_array_equal(m, painted)
        assert j not in used
        used.add(j)
        checked += 1
    return checked


def test_image_batches_follow_the_contract_and_masks_stay_on_their_pixels(layouts_root):
    cfg = _cfg("lvis_v1_train_norare", layouts_root, interpolation="nearest")
    it = make_train_iterator(cfg, batch_size=3, seed=0)
    checked = 0
    for batch in _take(it, 3):
        assert batch["image"].shape == (3, 64, 64, 3) and batch["image"].dtype == np.uint8
        assert batch["masks"].shape == (3, 4, 64, 64) and batch["masks"].dtype == bool
        assert batch["labels"].shape == (3, 4) and batch["labels"].dtype == np.int32
        assert batch["valid"].shape == (3, 4) and batch["valid"].dtype == bool
        assert batch["padding"].shape == (3, 64, 64) and batch["padding"].dtype == bool
        # Rare categories (0 and 3) never appear; padding is grey 128 and outside every mask.
        assert not np.isin(batch["labels"][batch["valid"]], [0, 3]).any()
        assert (batch["image"][batch["padding"]] == 128).all()
        assert not (batch["masks"] & batch["padding"][:, None]).any()
        for b in range(3):
            checked += _assert_colour_aligned(
                batch["image"][b], batch["masks"][b], batch["valid"][b]
            )
    assert checked >= 5
    info = dataset_info(cfg)
    assert info.num_classes == 6 and info.partition[0] == "novel"
    assert info.frequency_weight.shape == (6,) and info.frequency_weight[0] == 0


def test_clips_keep_one_video_and_per_frame_validity(layouts_root):
    cfg = _cfg("lvvis_train", layouts_root, clip_length=3, interpolation="nearest")
    it = make_train_iterator(cfg, batch_size=2, seed=1)
    checked = 0
    for batch in _take(it, 3):
        assert batch["image"].shape == (2, 3, 64, 64, 3)
        assert batch["masks"].shape == (2, 3, 4, 64, 64)
        assert batch["labels"].shape == batch["valid"].shape == (2, 3, 4)
        assert batch["padding"].shape == (2, 3, 64, 64)
        for b in range(2):
            # One draw per clip: the padding is the same in every frame.
            assert (batch["padding"][b] == batch["padding"][b, :1]).all()
            # A slot holds one instance: its label is the same wherever it is valid.
            for n in range(4):
                labels = set(batch["labels"][b, :, n][batch["valid"][b, :, n]].tolist())
                assert len(labels) <= 1
            for t in range(3):
                checked += _assert_colour_aligned(
                    batch["image"][b, t], batch["masks"][b, t], batch["valid"][b, t]
                )
    assert checked >= 6


def test_resume_gives_the_same_next_batches(layouts_root):
    # Six records, a large threshold (many repeats) and batches of 4: several epochs are crossed.
    cfg = _cfg("lvis_v1_train", layouts_root, repeat_factor_threshold=0.5, max_instances=3)
    run = _take(make_train_iterator(cfg, batch_size=4, seed=3), 5)
    resumed = _take(make_train_iterator(cfg, batch_size=4, seed=3, start_batch=3), 2)
    _assert_batches_equal(run[3], resumed[0])
    _assert_batches_equal(run[4], resumed[1])
    other_seed = next(make_train_iterator(cfg, batch_size=4, seed=4))
    assert not np.array_equal(other_seed["image"], run[0]["image"])


def test_each_host_reads_its_share_of_the_global_batch(layouts_root):
    cfg = _cfg("lvvis_train", layouts_root, clip_length=2)
    single = _take(make_train_iterator(cfg, batch_size=4, seed=5), 2)
    hosts = [
        _take(make_train_iterator(cfg, batch_size=2, seed=5, process_index=p, process_count=2), 2)
        for p in range(2)
    ]
    for k in range(2):
        for key in single[k]:
            glued = np.concatenate([hosts[0][k][key], hosts[1][k][key]])
            np.testing.assert_array_equal(glued, single[k][key], err_msg=key)


def _copy_video_layout(src_root: str, dst: str) -> str:
    e = registry.resolve("lvvis_train", src_root)
    root = os.path.join(dst, "lv")
    shutil.copytree(os.path.dirname(e.json), os.path.join(root, "train"))
    return root


def test_missing_and_corrupt_frames_are_replaced_and_counted(layouts_root, tmp_path):
    root = _copy_video_layout(layouts_root, str(tmp_path))
    frames = os.path.join(root, "train", "JPEGImages")
    for name in os.listdir(os.path.join(frames, "video000")):
        os.remove(os.path.join(frames, "video000", name))
    for name in os.listdir(os.path.join(frames, "video001")):
        with open(os.path.join(frames, "video001", name), "wb") as f:
            f.write(b"\xff\xd8\xff\xe0 not a jpeg")
    cfg = _cfg("lvvis_format", root, repeat_factor_threshold=0.0, max_instances=4)
    it = make_train_iterator(cfg, batch_size=3, seed=0)
    batches = _take(it, 2)
    # Each bad video is met once per epoch (twice at most when epochs load in parallel).
    assert 1 <= it.problems["missing_image"] <= 2
    assert 1 <= it.problems["unreadable_image"] <= 2
    # Every example now comes from video002 (three instances in its first frame).
    with open(os.path.join(root, "train", "train_instances.json")) as f:
        cats = {a["category_id"] for a in json.load(f)["annotations"] if a["video_id"] == 3}
    ids = registry.load_dataset("lvvis_format", root).category_ids
    for b in batches:
        assert {ids[c] for c in b["labels"][b["valid"]].tolist()} <= cats


def test_all_frames_missing_is_a_clear_error(layouts_root, tmp_path):
    root = _copy_video_layout(layouts_root, str(tmp_path))
    shutil.rmtree(os.path.join(root, "train", "JPEGImages"))
    it = make_train_iterator(_cfg("lvvis_format", root), batch_size=1, seed=0)
    with pytest.raises(Exception, match="image file not found: .*JPEGImages/video00"):
        next(it)


def test_bad_arguments_are_named(layouts_root):
    cfg = _cfg("lvvis_train", layouts_root)
    with pytest.raises(ValueError, match="batch_size"):
        make_train_iterator(cfg, batch_size=0, seed=0)
    with pytest.raises(ValueError, match="process_index"):
        make_train_iterator(cfg, batch_size=1, seed=0, process_index=2, process_count=2)
    with pytest.raises(ValueError, match="clip_length"):
        make_train_iterator(_cfg("lvvis_train", layouts_root, clip_length=0), batch_size=1, seed=0)


def test_the_synthetic_dataset_trains_on_base_categories(tmp_path):
    spec = syn.SyntheticSpec(
        num_train_videos=4,
        num_val_videos=0,
        num_frames=3,
        height=64,
        width=64,
        min_size=10,
        max_size=22,
        text_dim=16,
    )
    paths = syn.build_synthetic_dataset(tmp_path / "synth", spec, seed=0)
    cfg = _cfg("lvvis_format", paths["root"], base_only=True, max_instances=6)
    info = dataset_info(cfg)
    with open(paths["train_json"]) as f:
        json_cats = json.load(f)["categories"]
    # Contiguous order = the json's category order = the classifier rows.
    assert info.category_names == tuple(c["name"] for c in json_cats) == tuple(syn.category_names())
    assert info.num_classes == np.load(paths["classifier"]).shape[0] == 64
    novel = [i for i, c in enumerate(json_cats) if c["partition"] == syn.PARTITION_NOVEL]
    assert len(novel) == 16 and [info.partition[i] for i in novel] == ["novel"] * 16
    assert all(info.frequency_weight[i] == 0 for i in novel)
    batch = next(make_train_iterator(cfg, batch_size=2, seed=0))
    assert batch["image"].shape == (2, 64, 64, 3) and batch["valid"].any()
    assert not np.isin(batch["labels"][batch["valid"]], novel).any()
