"""The split ``config.evaluate`` names: a YouTube-VIS-format json with its image folder
(``dataset_json``, ``image_root``), or a prepared TFDS split (``dataset`` =
``tfds:<name>[/<config>]:<split>`` in the TFDS data dir ``root``; "" : TFDS's default)."""

from __future__ import annotations

import dataclasses

import ml_collections

from ov2seg_jax.data.video_json import VideoDataset, load_video_dataset


@dataclasses.dataclass(frozen=True)
class EvalSplit:
    """The videos to predict, their ground truth (a json path or the json itself) and a label."""

    dataset: VideoDataset
    ground_truth: str | dict
    label: str


def uses_tfds(ev: ml_collections.ConfigDict) -> bool:
    return bool(ev.dataset)


def open_eval_split(ev: ml_collections.ConfigDict) -> EvalSplit:
    """Open ``config.evaluate``'s split; ValueError/FileNotFoundError name what is wrong."""
    if not uses_tfds(ev):
        return EvalSplit(
            load_video_dataset(ev.dataset_json, ev.image_root), ev.dataset_json, ev.dataset_json
        )
    from ov2seg_jax.data.tfds import reader

    if not reader.is_tfds(ev.dataset):
        raise ValueError(
            f"config.evaluate.dataset {ev.dataset!r}: give tfds:<name>[/<config>]:<split>, or "
            "leave it empty and set dataset_json and image_root"
        )
    dataset = reader.load_video_dataset(ev.dataset, ev.root)
    return EvalSplit(dataset, reader.annotation_json(ev.dataset, ev.root), ev.dataset)
