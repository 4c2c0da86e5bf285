"""A prepared TFDS split as the records the training pipeline and the evaluation read.

A dataset is named ``tfds:<name>[/<config>]:<split>`` (``split`` may use TFDS's slicing,
``val[:8]``); ``data_dir`` is where it was prepared ("" : TFDS's default, ``$TFDS_DATA_DIR`` or
``~/tensorflow_datasets``). The split is opened as a random-access ``data_source``, which needs
ArrayRecord files (a split prepared as TFRecord is refused with a one-line error), its records are
read once (frames left encoded) and turned back into the YouTube-VIS-format json
(:func:`~ov2seg_jax.data.tfds.features.to_annotation_json`), which the folder readers parse as
usual. Frames are then fetched by record index through
:func:`ov2seg_jax.data.frame_files.open_frame` and decoded by the same PIL code as files, so a
split read here gives the same records, pixels, batches and results as its folder layout.

Hosts shard by position exactly as with folders (each host asks the data source for the records
of its own positions only), and the resumable position is the same global example position.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import os
import re
import threading

import tensorflow_datasets as tfds

from ov2seg_jax.data import frame_files
from ov2seg_jax.data.records import TrainDataset
from ov2seg_jax.data.tfds.features import to_annotation_json
from ov2seg_jax.data.video_json import (
    VideoDataset,
    video_dataset_from_data,
    video_train_dataset_from_data,
)

PREFIX = "tfds:"
_NAME = re.compile(r"^[a-z0-9_]+(/[A-Za-z0-9_.\-]+)?$")
_REQUIRED_FEATURES = ("video_id", "file_names", "frames", "height", "width", "tracks")
# The TFDS catalog's own builders of these datasets, and why their records cannot feed this
# model's readers as they are.
CATALOG_LIMITS = {
    "youtube_vis": (
        "the TFDS catalog's youtube_vis (2019) keeps frames in a Video feature and per-track "
        "masks as PNG videos without the json's video ids, annotation ids or per-frame areas, "
        "and its validation/test splits carry no labels; prepare YouTube-VIS 2021 from its "
        "json with `data_prep.prepare_tfds --dataset ytvis_2021`, or train from the folder "
        "layout (ytvis_2019_train)"
    ),
    "lvis": (
        "the TFDS catalog's lvis holds single images whose categories carry no frequency "
        "(no base/novel partition for the norare split) and no image counts for the federated "
        "loss; train from the folder layout (lvis_v1_train_norare)"
    ),
}


class TfdsInputError(ValueError):
    """A ``tfds:`` dataset that cannot be read (one line naming it)."""


@dataclasses.dataclass(frozen=True)
class TfdsName:
    name: str  # the builder name, with "/<config>" when given
    split: str

    @property
    def base_split(self) -> str:
        return re.match(r"\w*", self.split).group(0)

    def __str__(self) -> str:
        return f"{PREFIX}{self.name}:{self.split}"


def is_tfds(dataset: str) -> bool:
    return isinstance(dataset, str) and dataset.startswith(PREFIX)


def parse(dataset: str) -> TfdsName:
    """``tfds:<name>[/<config>]:<split>`` -> :class:`TfdsName`; TfdsInputError when malformed."""
    body = dataset[len(PREFIX) :] if is_tfds(dataset) else ""
    name, _, split = body.partition(":")
    if not _NAME.match(name) or not split or not re.match(r"^\w+", split):
        raise TfdsInputError(
            f"{dataset!r} is not a TFDS dataset name; use tfds:<name>[/<config>]:<split>, "
            "e.g. tfds:lvvis:train"
        )
    return TfdsName(name, split)


class KeepEncoded(tfds.decode.Decoder):
    """Leave images as their stored bytes (decoded later, only the frames a reader needs)."""

    def decode_example(self, serialized):
        return serialized

    def decode_example_np(self, serialized):
        return serialized

    def decode_batch_example_np(self, serialized):
        return serialized


@dataclasses.dataclass(frozen=True, eq=False)
class OpenSplit:
    """A prepared split opened for random access."""

    spec: TfdsName
    data_dir: str
    source: object  # the TFDS data source: len() and [index]
    categories: list[dict]
    annotated: bool
    frame_prefix: str

    @property
    def label(self) -> str:
        return f"{self.spec} ({self.data_dir})"


def _builder(spec: TfdsName, data_dir: str):
    import ov2seg_jax.data.tfds  # noqa: F401  (registers this package's builders)

    base = spec.name.split("/")[0]
    if base in CATALOG_LIMITS and base not in ov2seg_jax.data.tfds.BUILDERS:
        raise TfdsInputError(f"{spec}: not usable here: {CATALOG_LIMITS[base]}")
    try:
        builder = tfds.builder(spec.name, data_dir=data_dir or None)
    except (tfds.core.registered.DatasetNotFoundError, ValueError) as e:
        ours = ", ".join(sorted(ov2seg_jax.data.tfds.BUILDERS))
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TfdsInputError(f"{spec}: no such TFDS dataset ({first}); ours: {ours}") from None
    if not builder.is_prepared():
        raise TfdsInputError(
            f"{spec}: not prepared in {builder.data_dir}; prepare it with "
            f"`python -m data_prep.prepare_tfds --dataset {spec.name} --data-dir "
            f"{data_dir or '~/tensorflow_datasets'} --manual-dir FOLDER`"
        )
    missing = [k for k in _REQUIRED_FEATURES if k not in builder.info.features]
    if missing:
        raise TfdsInputError(
            f"{spec}: its features lack {', '.join(missing)} (a video dataset of this package "
            "is needed: " + ", ".join(sorted(ov2seg_jax.data.tfds.BUILDERS)) + ")"
        )
    return builder


class _FrameCache:
    """Encoded frames of the last few records read (a video is read once for all its frames)."""

    def __init__(self, source, size: int = 8):
        self._source = source
        self._size = size
        self._cache: collections.OrderedDict[int, list[bytes]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def read(self, index: int, frame: int) -> bytes:
        with self._lock:
            frames = self._cache.get(index)
            if frames is not None:
                self._cache.move_to_end(index)
        if frames is None:
            frames = list(self._source[index]["frames"])
            with self._lock:
                self._cache[index] = frames
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        return frames[frame]


@functools.lru_cache(maxsize=8)
def _open(spec: TfdsName, data_dir: str, stamp: float) -> OpenSplit:
    del stamp  # part of the cache key only: a re-prepared dataset is opened again
    builder = _builder(spec, data_dir)
    splits = builder.info.splits
    if spec.base_split not in splits:
        raise TfdsInputError(
            f"{spec}: no split '{spec.base_split}' (has: {', '.join(sorted(splits))})"
        )
    file_format = builder.info.file_format
    if file_format is None or file_format.value != "array_record":
        raise TfdsInputError(
            f"{spec}: prepared as {file_format.value if file_format else 'unknown format'} in "
            f"{builder.data_dir}, but reading needs ArrayRecord (random access); prepare it again "
            "with --file-format array_record"
        )
    try:
        source = builder.as_data_source(spec.split, decoders={"frames": KeepEncoded()})
    except (ValueError, KeyError, NotImplementedError) as e:
        raise TfdsInputError(f"{spec}: {str(e).strip().splitlines()[0]}") from None
    metadata = builder.info.metadata or {}
    try:
        categories = metadata["categories"][spec.base_split]
        annotated = bool(metadata["annotated"][spec.base_split])
    except (KeyError, TypeError):
        raise TfdsInputError(
            f"{spec}: its metadata.json has no category table for split '{spec.base_split}'"
        ) from None
    key = hashlib.sha1(f"{data_dir}|{spec}".encode()).hexdigest()[:16]
    prefix = frame_files.register_source(key, _FrameCache(source).read)
    return OpenSplit(spec, data_dir, source, categories, annotated, prefix)


def open_split(dataset: str | TfdsName, data_dir: str) -> OpenSplit:
    """Open a prepared split (cached per process; re-opened when it is prepared again)."""
    spec = parse(dataset) if isinstance(dataset, str) else dataset
    data_dir = os.path.abspath(os.path.expanduser(data_dir)) if data_dir else ""
    default = os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
    root = os.path.join(data_dir or os.path.expanduser(default), *spec.name.split("/"))
    stamp = max((os.path.getmtime(d) for d, _, _ in os.walk(root)), default=-1.0)
    return _open(spec, data_dir, stamp)


@functools.lru_cache(maxsize=8)
def _annotation_json(split: OpenSplit) -> dict:
    records = ((i, split.source[i]) for i in range(len(split.source)))
    return to_annotation_json(records, split.categories, split.annotated, split.frame_prefix)


def annotation_json(dataset: str | TfdsName, data_dir: str) -> dict:
    """The YouTube-VIS-format json of a split (frames as addresses, see the module docstring).

    Treat it as read-only: it is cached and shared.
    """
    return _annotation_json(open_split(dataset, data_dir))


def load_train_dataset(
    dataset: str, data_dir: str, drop_partitions: tuple[str, ...] = ()
) -> TrainDataset:
    """The training records of a split, exactly as the folder reader makes them of its json."""
    split = open_split(dataset, data_dir)
    return video_train_dataset_from_data(
        _annotation_json(split),
        split.label,
        "",
        name=str(split.spec),
        drop_partitions=drop_partitions,
    )


def load_video_dataset(dataset: str, data_dir: str) -> VideoDataset:
    """The video list of a split for prediction and evaluation (as ``load_video_dataset``)."""
    split = open_split(dataset, data_dir)
    return video_dataset_from_data(_annotation_json(split), split.label, "")
