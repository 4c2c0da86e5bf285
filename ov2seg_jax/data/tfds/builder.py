"""The shared TFDS builder of every YouTube-VIS-format dataset: a manual folder in a known
layout -> one record per video (:mod:`.features`), ArrayRecord files by default.

A dataset module names its layout (:class:`SplitLayout` per split) and its instructions; this
class checks the folder, reads each json with the readers' own parsing, stores the category table
of each split in the metadata (``categories``, ``annotated``), and writes the records in the
json's video order (shuffling disabled, so record ``i`` is the json's ``videos[i]``).
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow_datasets as tfds

from ov2seg_jax.data.json_file import read_json
from ov2seg_jax.data.tfds.features import video_examples, video_features

DEFAULT_FILE_FORMAT = "array_record"


class LayoutError(ValueError):
    """The manual folder is missing, empty, or not in the dataset's layout."""


@dataclasses.dataclass(frozen=True)
class SplitLayout:
    """One split under the manual folder: its json and image folder (relative paths).

    ``required``: the build fails without it (an optional split, such as a test split whose
    json not everyone has, is left out when absent).
    """

    split: str
    json: str
    images: str
    required: bool


def layout_text(layout: tuple[SplitLayout, ...]) -> str:
    """The expected files, for instructions and errors."""
    return "; ".join(
        f"{s.split}: {s.json} + {s.images}/" + ("" if s.required else " (optional)") for s in layout
    )


def check_layout(root: str, layout: tuple[SplitLayout, ...], name: str) -> list[SplitLayout]:
    """The splits present under ``root``; LayoutError naming the first missing required file."""
    if not os.path.isdir(root) or not os.listdir(root):
        raise LayoutError(
            f"{name}: manual folder {root} is missing or empty; expected {layout_text(layout)}"
        )
    present = []
    for s in layout:
        json_path, images = os.path.join(root, s.json), os.path.join(root, s.images)
        if os.path.isfile(json_path) and os.path.isdir(images):
            present.append(s)
        elif s.required:
            what = json_path if not os.path.isfile(json_path) else images + "/"
            raise LayoutError(
                f"{name}: {what} not found (split '{s.split}'); expected under {root}: "
                f"{layout_text(layout)}"
            )
    if not present:
        raise LayoutError(f"{name}: no split found under {root}; expected {layout_text(layout)}")
    return present


def read_split_json(path: str) -> dict:
    """The json of a split with the fields every record needs checked (one-line errors)."""
    data = read_json(path)
    for key in ("videos", "categories"):
        if not isinstance(data.get(key), list):
            raise LayoutError(f"{path}: field '{key}' is missing or not a list")
    return data


class VideoFolderBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the video dataset builders; subclasses set ``name``, ``LAYOUT`` and the texts."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    LAYOUT: tuple[SplitLayout, ...] = ()
    DESCRIPTION = ""

    def __init__(self, *, file_format=None, **kwargs):
        super().__init__(file_format=file_format, **kwargs)
        if file_format is None and not self.is_prepared():  # new files: ArrayRecord by default
            self.info.set_file_format(DEFAULT_FILE_FORMAT, override=True)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=self.DESCRIPTION,
            features=video_features(),
            metadata=tfds.core.MetadataDict(),
            disable_shuffling=True,
        )

    def source_root(self, dl_manager: tfds.download.DownloadManager) -> str:
        """The folder holding the layout (the manual folder)."""
        try:
            return os.fspath(dl_manager.manual_dir)
        except AssertionError:
            raise LayoutError(
                f"{self.name}: the manual folder (--manual_dir) is missing or empty; expected "
                f"{layout_text(self.LAYOUT)}"
            ) from None

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = self.source_root(dl_manager)
        generators = {}
        categories, annotated = {}, {}
        for s in check_layout(root, self.LAYOUT, self.name):
            json_path = os.path.join(root, s.json)
            data = read_split_json(json_path)
            categories[s.split] = data["categories"]
            annotated[s.split] = bool(data.get("annotations"))
            generators[s.split] = self._generate_examples(
                data, os.path.join(root, s.images), json_path
            )
        self.info.metadata["categories"] = categories
        self.info.metadata["annotated"] = annotated
        self.info.metadata["source"] = root
        return generators

    def _generate_examples(self, data: dict, image_root: str, json_path: str):
        yield from video_examples(data, image_root, json_path)
