"""The synthetic dataset on disk: LV-VIS annotations of rendered scenes, the split files, the
vocabulary and classifier files, the manifest, and the atomic, idempotent build."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ov2seg_jax.atomic_file import atomic_write
from ov2seg_jax.data.synthetic.categories import (
    PARTITION_BASE,
    PARTITION_NOVEL,
    categories,
    category_names,
    split_category_ids,
)
from ov2seg_jax.data.synthetic.render import render_scene, video_scene
from ov2seg_jax.data.synthetic.spec import SPLITS, SyntheticSpec
from ov2seg_jax.vocabulary.cache import save_array_atomic
from ov2seg_jax.vocabulary.compositional import ENCODER_VERSION, encode_names

FORMAT_VERSION = 1
_GENERATOR = "ov2seg_jax.data.synthetic"


def track_annotation(masks: np.ndarray) -> dict:
    """LV-VIS fields of one instance from its visible masks ``(T, H, W)`` bool.

    ``segmentations``: compressed RLE per frame (``counts`` as str), None where the instance has
    no visible pixel; ``areas``: pixel counts (None where absent); ``bboxes``: ``[x, y, w, h]``
    of the visible pixels (None where absent).
    """
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    segs, areas, boxes = [], [], []
    for t, rle in enumerate(rles):
        ys, xs = np.nonzero(masks[t])
        if ys.size == 0:
            segs.append(None)
            areas.append(None)
            boxes.append(None)
            continue
        segs.append({"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()})
        areas.append(int(ys.size))
        x0, y0 = int(xs.min()), int(ys.min())
        boxes.append([float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)])
    return {"segmentations": segs, "areas": areas, "bboxes": boxes}


def _json_categories() -> list[dict]:
    return [{"id": c["id"], "name": c["name"], "partition": c["partition"]} for c in categories()]


def _write_json_atomic(path: str, data: object) -> None:
    with atomic_write(path) as f:
        json.dump(data, f, separators=(",", ":"))


def write_split(out_root: str, split: str, spec: SyntheticSpec, seed: int) -> dict:
    """Render and write one split under ``out_root``; returns counts for the summary."""
    split_dir = os.path.join(out_root, split)
    image_root = os.path.join(split_dir, "JPEGImages")
    novel_ids = set(split_category_ids(PARTITION_NOVEL))
    videos, annotations = [], []
    null_frames = 0
    for index in range(spec.num_videos(split)):
        scene = video_scene(spec, seed, split, index)
        frames, masks = render_scene(scene)
        name = f"{index:05d}"
        os.makedirs(os.path.join(image_root, name), exist_ok=True)
        file_names = []
        for t, frame in enumerate(frames):
            rel = f"{name}/{t:05d}.jpg"
            Image.fromarray(frame).save(
                os.path.join(image_root, rel), quality=spec.jpeg_quality, subsampling=0
            )
            file_names.append(rel)
        video_id = index + 1
        videos.append(
            {
                "id": video_id,
                "file_names": file_names,
                "height": spec.height,
                "width": spec.width,
                "length": spec.num_frames,
            }
        )
        for obj, obj_masks in zip(scene.objects, masks, strict=True):
            fields = track_annotation(obj_masks)
            null_frames += sum(s is None for s in fields["segmentations"])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "video_id": video_id,
                    "category_id": obj.category_id,
                    "iscrowd": 0,
                    "height": spec.height,
                    "width": spec.width,
                    "length": spec.num_frames,
                    **fields,
                }
            )
    data = {
        "info": {
            "description": f"ov2seg-jax synthetic shapes ({split})",
            "version": FORMAT_VERSION,
            "seed": seed,
        },
        "licenses": [],
        "videos": videos,
        "categories": _json_categories(),
        "annotations": annotations,
    }
    os.makedirs(split_dir, exist_ok=True)
    _write_json_atomic(os.path.join(split_dir, f"{split}_instances.json"), data)
    per_cat = np.bincount([a["category_id"] for a in annotations], minlength=len(categories()) + 1)
    return {
        "videos": len(videos),
        "frames": len(videos) * spec.num_frames,
        "instances": len(annotations),
        "novel_instances": sum(a["category_id"] in novel_ids for a in annotations),
        "null_frames": null_frames,
        "min_instances_per_novel": int(min(per_cat[i] for i in novel_ids)),
        "min_instances_per_base": int(min(per_cat[i] for i in split_category_ids(PARTITION_BASE))),
    }


# ---------------------------------------------------------------------------- the dataset


def dataset_paths(root: str | os.PathLike[str]) -> dict[str, str]:
    """Where every part of a synthetic dataset rooted at ``root`` lives."""
    root = os.path.abspath(os.fspath(root))
    paths = {"root": root}
    for split in SPLITS:
        paths[f"{split}_images"] = os.path.join(root, split, "JPEGImages")
        paths[f"{split}_json"] = os.path.join(root, split, f"{split}_instances.json")
    paths["categories_json"] = os.path.join(root, "categories.json")
    paths["categories_txt"] = os.path.join(root, "categories.txt")
    paths["classifier"] = os.path.join(root, "text_classifier.npy")
    paths["manifest"] = os.path.join(root, "manifest.json")
    return paths


def _manifest(spec: SyntheticSpec, seed: int, summary: dict) -> dict:
    return {
        "generator": _GENERATOR,
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "spec": dataclasses.asdict(spec),
        "text_encoder": ENCODER_VERSION,
        "summary": summary,
    }


def read_manifest(root: str | os.PathLike[str]) -> dict | None:
    """The manifest of a complete synthetic dataset at ``root``, or None if there is none."""
    path = dataset_paths(root)["manifest"]
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("generator") == _GENERATOR else None


def is_complete(root: str | os.PathLike[str], spec: SyntheticSpec, seed: int) -> bool:
    """True if ``root`` holds a finished build of exactly ``(spec, seed)``."""
    manifest = read_manifest(root)
    if manifest is None:
        return False
    same = (
        manifest.get("format_version") == FORMAT_VERSION
        and manifest.get("seed") == seed
        and manifest.get("spec") == dataclasses.asdict(spec)
        and manifest.get("text_encoder") == ENCODER_VERSION
    )
    return same and all(os.path.exists(p) for p in dataset_paths(root).values())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _remove_stale_builds(parent: str, prefixes: tuple[str, ...]) -> None:
    """Delete leftovers of interrupted builds (their process is gone)."""
    for entry in os.listdir(parent):
        if entry.startswith(prefixes):
            pid = entry.rsplit("-", 1)[-1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def build_synthetic_dataset(
    root: str | os.PathLike[str], spec: SyntheticSpec | None = None, seed: int = 0
) -> dict[str, str]:
    """Build the synthetic dataset at ``root`` (see the module docstring); returns its paths.

    Idempotent: a complete build of the same ``(spec, seed)`` is left as it is. Otherwise the
    dataset is written into a hidden sibling folder and moved into place at the end, so an
    interrupted build never looks complete and is redone by the next call. An existing ``root``
    is replaced only if it is empty or an earlier synthetic build; any other folder is an error.

    Returns:
        ``{root, train_images, train_json, val_images, val_json, categories_json,
        categories_txt, classifier, manifest}`` as absolute paths.
    """
    spec = SyntheticSpec() if spec is None else spec
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    paths = dataset_paths(root)
    root = paths["root"]
    if is_complete(root, spec, seed):
        return paths
    if os.path.exists(root):
        if not os.path.isdir(root):
            raise ValueError(f"synthetic dataset root {root} exists and is not a folder")
        if os.listdir(root) and read_manifest(root) is None:
            raise ValueError(
                f"{root} is not empty and holds no synthetic dataset (no {paths['manifest']} "
                "written by this generator); refusing to overwrite it. Pick a new or empty folder."
            )
    parent, base = os.path.split(root)
    os.makedirs(parent, exist_ok=True)
    _remove_stale_builds(parent, (f".{base}.building-", f".{base}.old-"))
    work = os.path.join(parent, f".{base}.building-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    try:
        summary = {split: write_split(work, split, spec, seed) for split in SPLITS}
        tmp_paths = dataset_paths(work)
        with open(tmp_paths["categories_json"], "w", encoding="utf-8") as f:
            json.dump(categories(), f, indent=1)
        with open(tmp_paths["categories_txt"], "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in category_names()))
        save_array_atomic(tmp_paths["classifier"], encode_names(category_names(), spec.text_dim))
        os.chmod(tmp_paths["classifier"], 0o644)  # the atomic writer's temp file is private
        _write_json_atomic(tmp_paths["manifest"], _manifest(spec, seed, summary))
        if os.path.exists(root):
            old = os.path.join(parent, f".{base}.old-{os.getpid()}")
            os.replace(root, old)
            os.replace(work, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(work, root)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return paths
