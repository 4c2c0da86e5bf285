"""TFDS builders (ov2seg_jax.data.tfds): each original layout prepared as ArrayRecord and read back
gives the records, frames, masks, batches and ground truth of the folder readers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from data_prep import fake_layouts, prepare_tfds, verify_dataset
from ov2seg_jax.data import registry
from ov2seg_jax.data import synthetic as syn
from ov2seg_jax.data.eval_frames import read_frames_parallel
from ov2seg_jax.data.loader import load_example
from ov2seg_jax.data.pipeline import make_train_iterator
from ov2seg_jax.data.tfds import reader
from ov2seg_jax.data.tfds.prepare import prepare
from ov2seg_jax.data.video_json import load_video_dataset
from ov2seg_jax.evaluation import evaluate_video
from tests.data.test_pipeline import _assert_batches_equal, _cfg, _take

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SYNTH = syn.SyntheticSpec(
    num_train_videos=4,
    num_val_videos=3,
    num_frames=3,
    height=48,
    width=48,
    min_size=8,
    max_size=20,
    max_speed=2.0,
    text_dim=16,
)

# (tfds dataset, split) -> (folder dataset name, folder split) as the registry knows them.
SPLITS = {
    ("lvvis", "train"): ("lvvis_train", "train"),
    ("lvvis", "val"): ("lvvis_val", "train"),
    ("ovis", "train"): ("ovis_train", "train"),
    ("ytvis_2021", "train"): ("ytvis_2021_train", "train"),
    ("ytvis_2021", "valid"): ("ytvis_2021_val", "train"),
    ("ov2seg_synthetic", "train"): ("lvvis_format", "train"),
    ("ov2seg_synthetic", "val"): ("lvvis_format", "val"),
}
MANUAL = {"lvvis": "LVVIS", "ovis": "OVIS", "ytvis_2021": "ytvis_2021"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict:
    """Small datasets in every layout, prepared into one TFDS data dir."""
    base = tmp_path_factory.mktemp("tfds_layouts")
    datasets, data_dir = str(base / "datasets"), str(base / "tfds")
    for i, name in enumerate(("lvvis_train", "lvvis_val", "ovis_train")):
        fake_layouts.write_video_layout(datasets, name, seed=i, num_videos=4)
    for i, name in enumerate(("ytvis_2021_train", "ytvis_2021_val")):
        fake_layouts.write_video_layout(datasets, name, seed=5 + i, num_videos=3)
    # An LV-VIS test split: videos without annotations.
    test = fake_layouts.write_video_layout(
        os.path.join(datasets, "LVVIS"), "lvvis_format", split="test", num_videos=2, seed=9
    )
    test["annotations"] = []
    with open(os.path.join(datasets, "LVVIS", "test", "test_instances.json"), "w") as f:
        json.dump(test, f)
    synth = syn.build_synthetic_dataset(base / "synthetic", SYNTH, seed=2)["root"]
    builders = {}
    for name, folder in MANUAL.items():
        builders[name] = prepare(name, os.path.join(datasets, folder), data_dir)
    builders["ov2seg_synthetic"] = prepare("ov2seg_synthetic", synth, data_dir)
    return {"datasets": datasets, "synthetic": synth, "data_dir": data_dir, "builders": builders}


def _folder_root(prepared: dict, tfds_name: str) -> str:
    return prepared["synthetic"] if tfds_name == "ov2seg_synthetic" else prepared["datasets"]


def _folder_split(prepared: dict, tfds_name: str, split: str):
    """(json path, image root) of a split in its folder layout."""
    name, folder_split = SPLITS[(tfds_name, split)]
    entry = registry.resolve(name, _folder_root(prepared, tfds_name), folder_split)
    return entry.json, entry.image_root


# ---------------------------------------------------------------------------- records


@pytest.mark.parametrize(("tfds_name", "split"), sorted(SPLITS))
@pytest.mark.parametrize("base_only", [False, True])
def test_training_records_equal_the_folder_readers(prepared, tfds_name, split, base_only):
    name, folder_split = SPLITS[(tfds_name, split)]
    folder = registry.load_dataset(name, _folder_root(prepared, tfds_name), folder_split, base_only)
    stored = registry.load_dataset(
        f"tfds:{tfds_name}:{split}", prepared["data_dir"], "ignored", base_only
    )
    for field in ("category_ids", "category_names", "partition", "frequency_weight", "is_video"):
        assert getattr(stored, field) == getattr(folder, field), field
    assert stored.problems == folder.problems
    assert len(stored.records) == len(folder.records) > 0
    for a, b in zip(folder.records, stored.records, strict=True):
        assert (a.record_id, a.height, a.width) == (b.record_id, b.height, b.width)
        assert len(a.frame_paths) == len(b.frame_paths)
        # Same categories and presence per frame; polygons are stored as the RLE they decode to,
        # so the masks are compared decoded.
        assert [t.category for t in a.instances] == [t.category for t in b.instances]
        absent = [[s is None for s in t.segmentations] for t in a.instances]
        assert absent == [[s is None for s in t.segmentations] for t in b.instances]
        frames = list(range(len(a.frame_paths)))
        for x, y in zip(load_example(a, frames), load_example(b, frames), strict=True):
            np.testing.assert_array_equal(x, y)  # frames, decoded masks, labels


@pytest.mark.parametrize(("tfds_name", "split"), [*sorted(SPLITS), ("lvvis", "test")])
def test_video_lists_and_frames_equal_the_folder_readers(prepared, tfds_name, split):
    if (tfds_name, split) == ("lvvis", "test"):
        root = os.path.join(prepared["datasets"], "LVVIS", "test")
        json_path, images = (
            os.path.join(root, "test_instances.json"),
            os.path.join(root, "JPEGImages"),
        )
    else:
        json_path, images = _folder_split(prepared, tfds_name, split)
    folder = load_video_dataset(json_path, images)
    stored = reader.load_video_dataset(f"tfds:{tfds_name}:{split}", prepared["data_dir"])
    assert stored.has_annotations == folder.has_annotations == (split != "test")
    assert (stored.category_ids, stored.category_names) == (
        folder.category_ids,
        folder.category_names,
    )
    assert len(stored.videos) == len(folder.videos)
    with ThreadPoolExecutor(2) as pool:
        for a, b in zip(folder.videos, stored.videos, strict=True):
            assert (a.video_id, a.height, a.width) == (b.video_id, b.height, b.width)
            fa, size_a = read_frames_parallel(a.frame_paths, 32, 1333, pool)
            fb, size_b = read_frames_parallel(b.frame_paths, 32, 1333, pool)
            assert size_a == size_b
            np.testing.assert_array_equal(fa, fb)


@pytest.mark.parametrize(("tfds_name", "split"), [("lvvis", "val"), ("ov2seg_synthetic", "val")])
def test_ground_truth_scores_identically(prepared, tfds_name, split):
    json_path, _ = _folder_split(prepared, tfds_name, split)
    with open(json_path) as f:
        gt = json.load(f)
    rng = np.random.default_rng(0)
    results = []
    for a in gt["annotations"]:
        for cid in (a["category_id"], gt["categories"][0]["id"]):  # right and wrong class
            segs = [s if rng.random() < 0.7 else None for s in a["segmentations"]]
            segs = [fake_layouts_rle(s, a, gt) for s in segs]
            results.append(
                {
                    "video_id": a["video_id"],
                    "category_id": cid,
                    "score": float(rng.random()),
                    "segmentations": segs,
                }
            )
    stored = reader.annotation_json(f"tfds:{tfds_name}:{split}", prepared["data_dir"])
    if tfds_name != "ov2seg_synthetic":  # fake layouts' ids are not 1..K: overall AP only
        gt = {**gt, "categories": [{"id": c["id"], "name": c["name"]} for c in gt["categories"]]}
        stored = {**stored, "categories": gt["categories"]}
    a = evaluate_video(gt, results)
    b = evaluate_video(stored, results)
    assert a.stats[0] > 0.05  # a real score, not all zeros
    np.testing.assert_array_equal(a.stats, b.stats)
    if a.stats_base is not None:
        np.testing.assert_array_equal(a.stats_base, b.stats_base)
        np.testing.assert_array_equal(a.stats_novel, b.stats_novel)


def fake_layouts_rle(seg, annotation: dict, gt: dict):
    """A result segmentation from a GT one: compressed RLE (polygons encoded), None kept."""
    if seg is None:
        return None
    from ov2seg_jax.data.tfds.features import compressed_rle

    video = next(v for v in gt["videos"] if v["id"] == annotation["video_id"])
    rle = compressed_rle(seg, video["height"], video["width"])
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def test_stored_format_metadata_and_order(prepared):
    builder = prepared["builders"]["lvvis"]
    assert builder.info.file_format.value == "array_record"
    files = os.listdir(builder.data_dir)
    assert any(".array_record-" in f for f in files) and "metadata.json" in files
    assert sorted(builder.info.splits) == ["test", "train", "val"]
    with open(os.path.join(prepared["datasets"], "LVVIS", "val", "val_instances.json")) as f:
        val = json.load(f)
    metadata = builder.info.metadata
    assert metadata["categories"]["val"] == val["categories"]  # ids, names, partition as in json
    assert metadata["annotated"] == {"train": True, "val": True, "test": False}
    source = builder.as_data_source("val", decoders={"frames": reader.KeepEncoded()})
    assert [int(source[i]["video_id"]) for i in range(len(source))] == [
        v["id"] for v in val["videos"]
    ]  # the json's order (shuffling disabled)
    record = source[0]
    first = os.path.join(
        prepared["datasets"], "LVVIS", "val", "JPEGImages", val["videos"][0]["file_names"][0]
    )
    with open(first, "rb") as f:
        assert record["frames"][0] == f.read()  # the JPEG bytes as stored, not re-encoded
    synth = prepared["builders"]["ov2seg_synthetic"].info.metadata["manifest"]
    assert synth == syn.read_manifest(prepared["synthetic"])


# ---------------------------------------------------------------------------- the pipeline


def test_train_batches_equal_resume_and_shard_alike(prepared):
    kw = dict(clip_length=2, base_only=True, repeat_factor_threshold=0.0)
    folder = _cfg("lvvis_format", prepared["synthetic"], **kw)
    stored = _cfg("tfds:ov2seg_synthetic:train", prepared["data_dir"], **kw)
    a = _take(make_train_iterator(folder, batch_size=2, seed=3), 3)
    b = _take(make_train_iterator(stored, batch_size=2, seed=3), 3)
    for x, y in zip(a, b, strict=True):
        _assert_batches_equal(x, y)
    resumed = next(make_train_iterator(stored, batch_size=2, seed=3, start_batch=2))
    _assert_batches_equal(resumed, a[2])
    for p in range(2):  # each host's share of a global batch of 2 x 1
        host = next(
            make_train_iterator(stored, batch_size=1, seed=3, process_index=p, process_count=2)
        )
        _assert_batches_equal(host, {k: v[p : p + 1] for k, v in a[0].items()})


# ---------------------------------------------------------------------------- errors


def _cli_error(capsys, argv) -> str:
    assert prepare_tfds.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_missing_file_wrong_layout_and_missing_split_are_one_line(prepared, tmp_path, capsys):
    # A missing manual file: LV-VIS without its val json.
    broken = tmp_path / "LVVIS"
    fake_layouts.write_video_layout(str(tmp_path), "lvvis_train", num_videos=1)
    err = _cli_error(
        capsys,
        ["--dataset", "lvvis", "--manual-dir", str(broken), "--data-dir", str(tmp_path / "t")],
    )
    assert "val/val_instances.json not found" in err and "split 'val'" in err
    # A wrong layout: the folder is not the dataset's (a synthetic build given as OVIS).
    err = _cli_error(
        capsys,
        [
            "--dataset",
            "ovis",
            "--manual-dir",
            prepared["synthetic"],
            "--data-dir",
            str(tmp_path / "t"),
        ],
    )
    assert "no split found" in err and "annotation_train.json" in err
    err = _cli_error(
        capsys,
        [
            "--dataset",
            "ov2seg_synthetic",
            "--manual-dir",
            str(broken),
            "--data-dir",
            str(tmp_path / "t"),
        ],
    )
    assert "holds no synthetic build" in err
    err = _cli_error(
        capsys,
        [
            "--dataset",
            "lvvis",
            "--manual-dir",
            str(tmp_path / "none"),
            "--data-dir",
            str(tmp_path / "t"),
        ],
    )
    assert "is missing or empty" in err
    err = _cli_error(capsys, ["--dataset", "coco", "--manual-dir", str(broken)])
    assert "unknown dataset 'coco'" in err
    # A split that does not exist, a dataset not prepared there, a name that is not one, files
    # without random access.
    tfrecord = str(tmp_path / "tfrecord")
    prepare("ov2seg_synthetic", prepared["synthetic"], tfrecord, file_format="tfrecord")
    for name, data_dir, message in [
        ("tfds:ov2seg_synthetic:val", tfrecord, "prepared as tfrecord"),
        ("tfds:lvvis:valid", prepared["data_dir"], "no split 'valid' (has: test, train, val)"),
        ("tfds:ovis:train", str(tmp_path / "empty"), "not prepared in"),
        ("tfds:nope:train", prepared["data_dir"], "no such TFDS dataset"),
        ("tfds:youtube_vis:train", prepared["data_dir"], "Video feature"),
        ("tfds:lvvis", prepared["data_dir"], "tfds:<name>[/<config>]:<split>"),
    ]:
        with pytest.raises(ValueError) as e:
            registry.load_dataset(name, data_dir)
        assert message in str(e.value) and len(str(e.value).splitlines()) == 1, str(e.value)


# ---------------------------------------------------------------------------- commands


def test_prepare_cli_and_verify_report(prepared, capsys):
    argv = ["--dataset", "ov2seg_synthetic", "--manual-dir", prepared["synthetic"]]
    assert prepare_tfds.main([*argv, "--data-dir", prepared["data_dir"]]) == 0
    out = capsys.readouterr().out
    assert "train: 4 videos" in out and "val: 3 videos" in out and "array_record" in out
    name = "tfds:ov2seg_synthetic:val"
    assert verify_dataset.main(["--dataset", name, "--root", prepared["data_dir"]]) == 0
    out = capsys.readouterr().out
    frames = SYNTH.num_val_videos * SYNTH.num_frames
    assert f"videos: 3, frames: {frames}" in out and "problems: none" in out


@pytest.mark.slow
def test_tfds_build_command(prepared, tmp_path):
    cmd = [sys.executable, "-m", "data_prep.tfds_build", "ov2seg_jax/data/tfds/synthetic.py"]
    cmd += ["--manual_dir", prepared["synthetic"], "--data_dir", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "ov2seg_synthetic" / "1.0.0"
    assert any(".array_record-" in f for f in os.listdir(folder))
    a = registry.load_dataset("tfds:ov2seg_synthetic:val", str(tmp_path))
    b = registry.load_dataset("lvvis_format", prepared["synthetic"], "val")
    assert [r.instances for r in a.records] == [r.instances for r in b.records]  # all RLE


def test_synthetic_set_is_prepared_again_for_another_build(prepared, tmp_path):
    import dataclasses

    data_dir = str(tmp_path / "tfds")
    first = prepare("ov2seg_synthetic", prepared["synthetic"], data_dir)
    assert first.info.splits["val"].num_examples == SYNTH.num_val_videos
    spec = dataclasses.replace(SYNTH, num_val_videos=1)
    other = syn.build_synthetic_dataset(tmp_path / "other", spec, seed=2)["root"]
    again = prepare("ov2seg_synthetic", other, data_dir)
    assert again.info.splits["val"].num_examples == 1
    assert again.info.metadata["manifest"]["spec"]["num_val_videos"] == 1
    kept = prepare("ov2seg_synthetic", other, data_dir)  # same build: nothing rewritten
    assert kept.info.metadata["manifest"] == again.info.metadata["manifest"]
    assert len(registry.load_dataset("tfds:ov2seg_synthetic:val", data_dir).records) == 1
