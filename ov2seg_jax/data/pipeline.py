"""The training input pipeline: records -> sampled, loaded, LSJ-augmented, padded batches.

The stream is a pure function of ``(seed, position)``: the global position of an example picks
its record through :class:`~ov2seg_jax.data.sampling.ExampleStream` (repeat-factor sampling,
per-epoch shuffle seeded by ``(seed, epoch)``), its clip frames through a numpy generator seeded
by ``(seed, position)``, and its augmentation through stateless TF draws seeded the same way.
So ``make_train_iterator(..., start_batch=k)`` yields exactly what an uninterrupted iterator
yields from batch ``k`` on, and each host (``process_index`` of ``process_count``) reads only
its own share of every global batch.

Files are read directly (PIL decoding inside ``tf.numpy_function``, augmentation in TF ops run in
parallel by tf.data) rather than converted to TFRecords first: the original's users already have
the image folders and jsons, a conversion would double the disk footprint of LVIS/COCO and must be
redone when annotations change, and for one host's share per step the parallel reads are not the
bottleneck on local disks (``scripts/bench_data.py`` measures it). A split prepared with the TFDS
builders (``config.data.dataset = "tfds:<name>:<split>"``, :mod:`ov2seg_jax.data.tfds.reader`)
feeds the same stream: its records come from the ArrayRecord files by index, frames included.

Batches (numpy), ``S = image_size``, ``N = max_instances``:

* images (``clip_length == 1``): ``image`` uint8 (B, S, S, 3) RGB, ``masks`` bool (B, N, S, S),
  ``labels`` int32 (B, N) contiguous category index, ``valid`` bool (B, N), ``padding`` bool
  (B, S, S) True on pixels added by the LSJ padding (value 128 in ``image``);
* clips (``clip_length == T > 1``): ``image`` (B, T, S, S, 3), ``masks`` (B, T, N, S, S),
  ``labels`` (B, T, N), ``valid`` (B, T, N) (an instance is valid in the frames where it is
  visible), ``padding`` (B, T, S, S).

Instances whose mask is empty after augmentation (in every frame of a clip) are dropped; the
first ``N`` remaining (annotation order) fill the slots, the rest are counted as
``instances_truncated``. Invalid slots have label 0 and empty masks.
"""

from __future__ import annotations

import dataclasses
import threading

import ml_collections
import numpy as np
import tensorflow as tf

from ov2seg_jax.config_fields import from_section
from ov2seg_jax.data import augment, loader, registry, sampling
from ov2seg_jax.data.records import ProblemTally, TrainDataset

# A failing record is replaced by a random other one at most this many times before giving up.
MAX_REPLACEMENTS = 16


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the model and the loss need to know about the training categories.

    ``partition[i]`` is "base"/"novel"; ``frequency_weight`` (C,) float32 is the federated class
    loss weight (image count ** 0.5, 0 for categories without training annotations).
    """

    category_names: tuple[str, ...]
    partition: tuple[str, ...]
    num_classes: int
    frequency_weight: np.ndarray


def load_train_dataset(data_cfg: ml_collections.ConfigDict) -> TrainDataset:
    """The records named by ``config.data`` (read once per process)."""
    return registry.load_dataset(
        data_cfg.dataset,
        data_cfg.root,
        data_cfg.split,
        bool(data_cfg.base_only),
    )


def dataset_info(data_cfg: ml_collections.ConfigDict) -> DatasetInfo:
    ds = load_train_dataset(data_cfg)
    return DatasetInfo(
        ds.category_names,
        ds.partition,
        len(ds.category_ids),
        np.asarray(ds.frequency_weight, np.float32),
    )


def lsj_config(data_cfg: ml_collections.ConfigDict) -> augment.LSJConfig:
    return from_section(augment.LSJConfig, data_cfg, "config.data")


class ExampleSource:
    """Position -> (frames, masks, labels) in numpy, with bad records counted and replaced.

    A record that fails to load is remembered and replaced by a record drawn from a generator
    seeded by ``(seed, position, attempt)``, so the substitution is itself deterministic.
    """

    def __init__(
        self,
        ds: TrainDataset,
        *,
        seed: int,
        clip_length: int,
        frame_range: int,
        repeat_threshold: float,
        shuffle: bool,
        tally: ProblemTally,
    ):
        if not ds.records:
            raise ValueError(
                f"dataset {ds.name} ({ds.json_path}) has no usable training records; "
                f"problems: {ds.problems}"
            )
        self.ds = ds
        self.seed = int(seed)
        self.clip_length = int(clip_length)
        self.frame_range = int(frame_range)
        factors = sampling.repeat_factors([r.categories for r in ds.records], repeat_threshold)
        self.stream = sampling.ExampleStream(factors, seed, shuffle)
        self.tally = tally
        self._bad: dict[int, str] = {}  # record index -> why it failed to load
        self._lock = threading.Lock()

    def record_index(self, position: int) -> int:
        with self._lock:
            return self.stream.record_at(position)[0]

    def load(self, position: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        index = self.record_index(position)
        errors = []
        for attempt in range(MAX_REPLACEMENTS + 1):
            if attempt:
                rng = np.random.default_rng([self.seed, position, attempt, 0xBAD])
                index = int(rng.integers(len(self.ds.records)))
            if index in self._bad:  # failed before, maybe in another loading thread
                errors.append(self._bad[index])
                continue
            record = self.ds.records[index]
            rng = np.random.default_rng([self.seed, position, 1])
            frames = loader.sample_clip_frames(
                len(record.frame_paths), self.clip_length, self.frame_range, rng
            )
            try:
                return loader.load_example(record, frames, self.tally)
            except loader.ExampleError as e:
                self._bad[index] = str(e)
                self.tally.add(e.kind, str(e))
                errors.append(str(e))
        raise RuntimeError(
            f"example {position}: {MAX_REPLACEMENTS + 1} records in a row failed to load "
            f"from {self.ds.name}; last errors: {errors[-3:]}"
        )


def _select_instances(masks: tf.Tensor, labels: tf.Tensor, max_instances: int):
    """Drop instances empty in every frame, keep the first ``max_instances``, pad the rest.

    masks bool (T, N, S, S), labels (N,) -> masks (T, M, S, S), labels (T, M), valid (T, M),
    and the number of non-empty instances before truncation.
    """
    present = tf.reduce_any(masks, axis=[2, 3])  # (T, N)
    keep = tf.where(tf.reduce_any(present, axis=0))[:, 0][:max_instances]
    kept_count = tf.reduce_sum(tf.cast(tf.reduce_any(present, axis=0), tf.int32))
    masks = tf.gather(masks, keep, axis=1)
    present = tf.gather(present, keep, axis=1)
    labels = tf.gather(labels, keep)
    pad = max_instances - tf.shape(keep)[0]
    masks = tf.pad(masks, [[0, 0], [0, pad], [0, 0], [0, 0]])
    present = tf.pad(present, [[0, 0], [0, pad]])
    labels = tf.pad(labels, [[0, pad]])
    t = tf.shape(masks)[0]
    labels = tf.where(present, tf.broadcast_to(labels[None], [t, max_instances]), 0)
    return masks, labels, present, kept_count


def augment_example(
    frames: tf.Tensor,
    masks: tf.Tensor,
    labels: tf.Tensor,
    seed: tf.Tensor,
    cfg: augment.LSJConfig,
    max_instances: int,
) -> dict[str, tf.Tensor]:
    """One loaded example -> fixed-shape tensors (clip axis T kept; see the module docstring)."""
    p = augment.sample_lsj(seed, tf.shape(frames)[1], tf.shape(frames)[2], cfg)
    image = augment.transform_frames(frames, p, cfg)
    out_masks = augment.transform_masks(masks, p, cfg)
    out_masks, out_labels, valid, kept = _select_instances(
        out_masks, tf.cast(labels, tf.int32), max_instances
    )
    t = tf.shape(frames)[0]
    pad = tf.broadcast_to(augment.padding_mask(p, cfg)[None], [t, cfg.image_size, cfg.image_size])
    return {
        "image": image,
        "masks": out_masks,
        "labels": out_labels,
        "valid": valid,
        "padding": pad,
        "num_instances": kept,
    }


def build_tf_dataset(
    source: ExampleSource,
    cfg: augment.LSJConfig,
    *,
    max_instances: int,
    batch_size: int,
    seed: int,
    start_batch: int,
    process_index: int,
    process_count: int,
    num_parallel_calls: int = -1,
    prefetch: int = 2,
) -> tf.data.Dataset:
    """Infinite ``tf.data`` pipeline of this host's batches from ``start_batch`` on."""
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    b, hosts = int(batch_size), int(process_count)

    def position(j):
        k = j // b + start_batch
        return (k * hosts + process_index) * b + j % b

    def load(pos):
        frames, masks, labels = tf.numpy_function(
            lambda q: source.load(int(q)), [pos], [tf.uint8, tf.uint8, tf.int32], stateful=False
        )
        frames = tf.ensure_shape(frames, [None, None, None, 3])
        masks = tf.ensure_shape(masks, [None, None, None, None])
        labels = tf.ensure_shape(labels, [None])
        seed_pair = tf.stack([tf.constant(seed, tf.int64), pos])
        example = augment_example(frames, masks, labels, seed_pair, cfg, max_instances)
        return {**example, "sample_id": pos}

    calls = tf.data.AUTOTUNE if num_parallel_calls in (None, -1, 0) else int(num_parallel_calls)
    ds = tf.data.Dataset.range(0, np.iinfo(np.int64).max).map(position)
    ds = ds.map(load, num_parallel_calls=calls, deterministic=True)
    ds = ds.batch(b, drop_remainder=True)
    options = tf.data.Options()
    options.deterministic = True
    ds = ds.with_options(options)
    return ds.prefetch(tf.data.AUTOTUNE if prefetch in (None, -1) else int(prefetch))


class TrainIterator:
    """This host's batches as numpy dicts; ``problems`` counts everything skipped so far.

    ``sample_ids`` (B,) int64: the stream positions of the last batch's examples (host ``p`` of
    ``P`` reads positions ``(k * P + p) * B ... + B - 1`` of global batch ``k``).
    """

    sample_ids: np.ndarray = np.zeros(0, np.int64)

    def __init__(self, ds: tf.data.Dataset, source: ExampleSource, clip: bool, max_instances: int):
        self._it = ds.as_numpy_iterator()
        self._source = source
        self._clip = clip
        self._max_instances = max_instances
        self._truncated = 0

    def __iter__(self) -> TrainIterator:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = next(self._it)
        self.sample_ids = batch.pop("sample_id")
        kept = batch.pop("num_instances")
        self._truncated += int(np.maximum(kept - self._max_instances, 0).sum())
        if not self._clip:
            batch = {k: v[:, 0] for k, v in batch.items()}
        return batch

    @property
    def problems(self) -> dict[str, int]:
        """Counts by kind: problems met reading the json and loading examples, and truncations."""
        counts = dict(self._source.ds.problems)
        for k, v in self._source.tally.as_dict().items():
            counts[k] = counts.get(k, 0) + v
        if self._truncated:
            counts["instances_truncated"] = self._truncated
        return counts


def make_train_iterator(
    data_cfg: ml_collections.ConfigDict,
    *,
    batch_size: int,
    seed: int,
    start_batch: int = 0,
    process_index: int = 0,
    process_count: int = 1,
) -> TrainIterator:
    """This host's training batches (``batch_size`` per host) from global batch ``start_batch``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    clip_length = int(data_cfg.clip_length)
    if clip_length < 1:
        raise ValueError(f"config.data.clip_length must be >= 1, got {clip_length}")
    ds = load_train_dataset(data_cfg)
    source = ExampleSource(
        ds,
        seed=seed,
        clip_length=clip_length,
        frame_range=int(data_cfg.clip_frame_range),
        repeat_threshold=float(data_cfg.repeat_factor_threshold),
        shuffle=bool(data_cfg.shuffle),
        tally=ProblemTally(),
    )
    max_instances = int(data_cfg.max_instances)
    tf_ds = build_tf_dataset(
        source,
        lsj_config(data_cfg),
        max_instances=max_instances,
        batch_size=batch_size,
        seed=seed,
        start_batch=start_batch,
        process_index=process_index,
        process_count=process_count,
        num_parallel_calls=int(data_cfg.num_parallel_calls),
        prefetch=int(data_cfg.prefetch),
    )
    return TrainIterator(tf_ds, source, clip_length > 1, max_instances)
