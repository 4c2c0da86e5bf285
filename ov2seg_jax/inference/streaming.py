"""Streaming video prediction with bounded memory: two passes over the windows of a video.

The batch path (:meth:`VideoPredictor.predict`, like the original) keeps every frame's mask logits
for all Q queries until the end, because the read-out picks its top-K (query, class) pairs only
once the frame-averaged logits of the whole video are known. Here that choice is split in two:

* **Pass 1** runs the network window by window and feeds the tracker
  (:func:`~ov2seg_jax.tracking.track_window`). It keeps the tracker state (memory, running logit
  sums, frame count) and each frame's slot permutation (T, Q) int32 (400 bytes a frame for
  Q = 100). At the end the frame-averaged logits give the top-K pairs through the read-out's
  own :func:`~ov2seg_jax.tracking.readout.choose_instances`.
* **Pass 2** visits the windows again and, for the K chosen pairs only, applies the read-out's
  per-frame ignore rule, accumulates its mask-score sums and turns each frame's K masks into compressed RLE
  at the output size. The final scores (video score * mask score) and the order of the instances
  are known at the end.

For pass 2 the network outputs of pass 1 are reused while they fit in ``cache_bytes`` (aligned
logits and stride-4 mask logits of all queries); a video whose outputs exceed it is decoded and
run through the network a second time instead, with the stored slot permutations, so tracking is
not redone. The network is deterministic, so both routes give the same instances as the batch
path (scores up to float32 rounding of the mask-score sums, masks identical).

Trade-off: memory is bounded by ``cache_bytes`` + one window + O(T * Q) slot indices + the RLE
results themselves (which grow with the video like the results JSON must); the price for videos
beyond the cache is a second network pass (about twice the compute). A single-pass alternative
would have to keep every frame's class logits for all (query, class) pairs and every query's mask
at output resolution, i.e. O(T * Q * (C + H * W)) — unbounded in practice for LV-VIS's 1196
classes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pycocotools.mask as mask_util
from tqdm import tqdm

from ov2seg_jax.inference.predictor import VideoPredictor
from ov2seg_jax.models.preprocess import normalize_and_pad, padded_size
from ov2seg_jax.process_clock import process_age_s
from ov2seg_jax.tracking import masks_to_output, track_window
from ov2seg_jax.tracking.readout import (
    blank_ignored_frames,
    choose_instances,
    ignored_frames,
    mask_score_sums,
    mask_scores_from_sums,
    rank_instances,
)


@dataclasses.dataclass(frozen=True)
class StreamedPrediction:
    """Instances of one video, sorted by descending score, with masks as per-frame RLE.

    ``scores`` (K,) float32, ``labels`` (K,) classifier rows, ``query_index`` (K,) tracked query;
    ``segmentations[k][t]``: compressed COCO RLE (``counts`` str) of instance ``k`` in frame
    ``t`` at ``output_size`` (H, W), or None where the mask is empty; ``num_frames`` T.
    """

    scores: np.ndarray
    labels: np.ndarray
    query_index: np.ndarray
    segmentations: list[list[dict | None]]
    num_frames: int
    output_size: tuple[int, int]

    def frame_masks(self, t: int) -> np.ndarray:
        """(K, H, W) bool masks of frame ``t``."""
        out = np.zeros((len(self.scores), *self.output_size), dtype=bool)
        for k, segs in enumerate(self.segmentations):
            if segs[t] is not None:
                out[k] = mask_util.decode(segs[t]).astype(bool)
        return out

    def masks(self) -> np.ndarray:
        """(K, T, H, W) bool: every mask decoded (for short videos and tests)."""
        return np.stack([self.frame_masks(t) for t in range(self.num_frames)], axis=1)

    def spans(self) -> list[tuple[int, int]]:
        """First and last frame with a non-empty mask per instance ((-1, -1) if none)."""
        out = []
        for segs in self.segmentations:
            present = [t for t, s in enumerate(segs) if s is not None]
            out.append((present[0], present[-1]) if present else (-1, -1))
        return out


def check_network_size(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """The padded (Hp, Wp) for frames of ``size`` (H, W) at the network's input, after checking
    that both sides reach the network's stride."""
    h, w = (int(v) for v in size)
    if min(h, w) < stride:
        raise ValueError(
            f"frames of {w}x{h} (at the network's input size) are smaller than the network "
            f"stride {stride}; use larger frames or a larger inference.min_size_test"
        )
    return padded_size(h, w, stride)


def _windows(frames: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def encode_frame(masks: np.ndarray) -> list[dict | None]:
    """(K, H, W) bool -> K compressed RLEs (``counts`` str), None for an empty mask."""
    rles = mask_util.encode(np.asfortranarray(np.transpose(masks, (1, 2, 0)).astype(np.uint8)))
    out: list[dict | None] = []
    for k, rle in enumerate(rles):
        if masks[k].any():
            rle["counts"] = rle["counts"].decode("ascii")
            out.append(rle)
        else:
            out.append(None)
    return out


class StreamingPredictor:
    """Bounded-memory prediction for videos of any length (see the module docstring).

    Args:
        predictor: the :class:`VideoPredictor` whose jitted network, classifier, window size
            and top-K are used (its compiled functions are shared).
        cache_bytes: network outputs kept between the passes; beyond it pass 2 reruns the network
            (``config.predict.cache_mb``).
    """

    def __init__(self, predictor: VideoPredictor, cache_bytes: int):
        # process age (s) when each of the first two windows was predicted: start-up is the
        # first minus the time the second took
        self.window_ages_s: list[float] = []
        self.predictor = predictor
        self.cache_bytes = int(cache_bytes)
        self.reran_network = False  # whether the last video needed the second network pass

    def _check_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return check_network_size(size, self.predictor.size_divisibility)

    def _network(self, window: np.ndarray, padded: tuple[int, int]) -> dict[str, np.ndarray]:
        return self.predictor.window_outputs(normalize_and_pad(window, target_size=padded))

    def predict(
        self,
        frames: Callable[[], Iterable[np.ndarray]],
        frame_size: tuple[int, int],
        output_size: tuple[int, int] | None = None,
        *,
        num_frames: int | None = None,
        progress: bool = False,
    ) -> StreamedPrediction:
        """Predict one video.

        Args:
            frames: called once per pass, returns an iterable of (H, W, 3) uint8 frames at the
                network's input size ``frame_size`` (lazily decoded, typically).
            frame_size: (H, W) of those frames.
            output_size: (height, width) of the returned masks (default ``frame_size``).
            num_frames: the frame count if known (for the progress bar only).
            progress: show a progress bar over frames.
        """
        h, w = (int(v) for v in frame_size)
        padded = self._check_size((h, w))
        output = tuple(int(v) for v in (output_size or (h, w)))
        ws = self.predictor.window_size

        # Pass 1: network + tracking; keep slot permutations and, within budget, the outputs.
        state, slots, cache, cached = None, [], [], 0
        keep = self.cache_bytes > 0
        bar = tqdm(total=num_frames, unit="frame", desc="network + tracking", disable=not progress)
        for window in _windows(frames(), ws):
            if window.shape[1:] != (h, w, 3):
                raise ValueError(f"frames must be ({h}, {w}, 3), got {window.shape[1:]}")
            state, aligned = track_window(state, self._network(window, padded))
            if len(self.window_ages_s) < 2 and window.shape[0] == ws:  # full windows only
                age = process_age_s()
                self.window_ages_s += [] if age is None else [age]
            slots.append(aligned.slot_indices.astype(np.int32))
            if keep:
                cached += (
                    aligned.pred_logits.nbytes
                    + aligned.pred_object_logits.nbytes
                    + aligned.pred_masks.nbytes
                )
                keep = cached <= self.cache_bytes
                cache = [*cache, aligned] if keep else []
            bar.update(window.shape[0])
        bar.close()
        if state is None:
            raise ValueError("the video holds no frames")
        self.reran_network = not keep

        # The top-K (query, class) pairs, by the read-out's own rule.
        chosen = choose_instances(
            state.mean_logits(), state.mean_object_logits(), self.predictor.top_k
        )
        top_k = len(chosen.flat_index)
        instances = np.arange(top_k)

        # Pass 2: the K pairs' per-frame rule, mask-score sums and RLE masks.
        num = np.zeros(top_k, np.float64)
        den = np.zeros(top_k, np.float64)
        segmentations: list[list[dict | None]] = [[] for _ in range(top_k)]
        bar = tqdm(total=state.num_frames, unit="frame", desc="masks", disable=not progress)
        for logits, obj, masks in self._chosen(
            keep, cache, slots, frames, padded, chosen.query_index
        ):
            t = logits.shape[0]
            ignored = ignored_frames(
                logits[:, instances, chosen.labels], obj, chosen.class_scores
            )  # (t, K)
            blank_ignored_frames(masks, ignored)
            window_num, window_den = mask_score_sums(masks, axis=(0, 2, 3))
            num += window_num
            den += window_den
            for i in range(t):
                binary = masks_to_output(masks[i], padded, (h, w), output)
                for k, rle in enumerate(encode_frame(binary)):
                    segmentations[k].append(rle)
            bar.update(t)
        bar.close()

        scores, order = rank_instances(chosen, mask_scores_from_sums(num, den))
        labels, query_index = chosen.labels, chosen.query_index
        return StreamedPrediction(
            scores=scores[order],
            labels=labels[order],
            query_index=query_index[order],
            segmentations=[segmentations[k] for k in order],
            num_frames=state.num_frames,
            output_size=output,
        )

    def _chosen(self, from_cache, cache, slots, frames, padded, query_index):
        """Per window: (logits (t, K, C+1), object logits (t, K, 2), masks (t, K, h, w)) of the
        chosen queries in slot order, from the cache or from a second network pass."""
        if from_cache:
            for aligned in cache:
                yield (
                    aligned.pred_logits[:, query_index],
                    aligned.pred_object_logits[:, query_index],
                    aligned.pred_masks[:, query_index],
                )
            return
        ws = self.predictor.window_size
        for index, window in enumerate(_windows(frames(), ws)):
            if index >= len(slots) or slots[index].shape[0] != window.shape[0]:
                raise ValueError("the video changed between the two passes (frame count differs)")
            out = self._network(window, padded)
            frame_axis = np.arange(window.shape[0])[:, None]
            chosen = slots[index][:, query_index]  # (t, K): each frame's query for each pair
            yield (
                out["pred_logits"][frame_axis, chosen].astype(np.float32),
                out["pred_object_logits"][frame_axis, chosen].astype(np.float32),
                out["pred_masks"][frame_axis, chosen].astype(np.float32),
            )
