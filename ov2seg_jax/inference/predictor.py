"""The video predictor: windows of frames through the jitted model, tracking, instance read-out.

As the original: frames are normalised and padded to a multiple of 32, run through the network in
windows of ``window_size`` frames (frames are independent until tracking), queries are matched
frame to frame by the streaming tracker, and the top-K (query, class) pairs become the video's
instances with masks resized to the requested output size.

Shape buckets: every window is padded to ``window_size`` frames (zero frames whose outputs are
dropped) and every frame to the next multiple of ``size_divisibility`` (32) in height and width,
as the original pads. A compiled executable therefore serves one bucket (window_size, Hp, Wp, C):
with ``min_size_test=480`` every landscape video has Hp = 480 and Wp = 32 * ceil(W' / 32) for its
resized width W' <= 1333 (16:9 -> 480x864, 4:3 -> 480x640), so a handful of buckets cover
typical inputs. Padding further (to coarser buckets) would change the network's outputs near the
border, so it is not done. The jitted function is shared by all predictors of an equal model
(:func:`jitted_forward`), so the executables are reused across videos and vocabularies of the
same size within a process.

Matmul precision: each predictor carries its own (``matmul_precision``, ``config.inference``'s),
applied to its jitted forward pass only, so evaluating inside a training run computes what
``--mode evaluate`` computes for the same weights whatever the process-wide default is.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ov2seg_jax.models.preprocess import normalize_and_pad, padded_size
from ov2seg_jax.tracking import instance_inference, masks_to_output, track_window
from ov2seg_jax.tracking.tracker import WINDOW_KEYS, assemble_result


@dataclasses.dataclass(frozen=True)
class VideoPrediction:
    """Instances of one video, sorted by descending score.

    scores (K,), labels (K,) 0-based rows of the classifier, masks (K, T, H, W) bool at the output
    size, query_index (K,) the decoder query each instance came from.
    """

    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    query_index: np.ndarray


class PrecisionJit:
    """A jitted function that is traced, compiled and run under its own default matmul
    precision (``jax.default_matmul_precision``, part of jit's cache key), not the process's."""

    def __init__(self, fn, precision: str | None):
        self.jitted = jax.jit(fn)  # trace/lower it under ``precision`` (see ``__call__``)
        self.precision = precision

    def __call__(self, *args):
        with jax.default_matmul_precision(self.precision):
            return self.jitted(*args)

    def lower(self, *args):
        with jax.default_matmul_precision(self.precision):
            return self.jitted.lower(*args)

    def _cache_size(self) -> int:
        """Executables compiled so far (jit's own count)."""
        return self.jitted._cache_size()


def jitted_forward(model: nn.Module, matmul_precision: str | None = None) -> PrecisionJit:
    """The jitted ``(variables, images, classifier) -> window outputs`` of ``model``, its matmuls
    at ``matmul_precision`` ("highest", "high", "default", ...; None: the process default).

    Shared by every predictor of an equal model (flax modules compare by their fields) and
    precision, so a new vocabulary, a new video or new weights reuse the executables compiled
    for earlier ones whenever the shapes (window, padded frame size, classes) are the same.
    """

    return _jitted_forward(model, matmul_precision)  # one cache key however it is called


@functools.lru_cache(maxsize=8)
def _jitted_forward(model: nn.Module, matmul_precision: str | None) -> PrecisionJit:
    def forward(variables, images, classifier):
        out = model.apply(variables, images, classifier)
        return {k: getattr(out, k) for k in WINDOW_KEYS}

    return PrecisionJit(forward, matmul_precision)


class VideoPredictor:
    """Runs OV2Seg on whole videos with a fixed set of variables and a text classifier.

    ``forward``: the ``(variables, images, classifier) -> window outputs`` to run instead of the
    jitted ``model`` (an exported network: :meth:`from_export`; ``model`` may then be None).
    """

    def __init__(
        self,
        model: nn.Module | None,
        variables,
        classifier,
        *,
        window_size: int,
        top_k: int,
        size_divisibility: int,
        forward=None,
        matmul_precision: str | None = None,
    ):
        """``window_size``, ``top_k`` and ``size_divisibility``: the fields of
        ``config.inference`` of the same names (:meth:`from_config`)."""
        classifier = np.asarray(classifier, np.float32)
        if classifier.ndim != 2:
            raise ValueError(
                f"classifier must be (C, D) text embeddings, got shape {classifier.shape}"
            )
        self.model = model
        self.variables = variables
        self.classifier = jnp.asarray(classifier)
        self.window_size = window_size
        self.top_k = top_k
        self.size_divisibility = size_divisibility
        self.matmul_precision = matmul_precision
        self._forward = forward if forward is not None else jitted_forward(model, matmul_precision)

    @classmethod
    def from_config(
        cls, model_cfg, variables, classifier, inference, programs: str | None = None
    ) -> VideoPredictor:
        """The predictor of a model config (``config.model``) with ``config.inference``'s
        window size, top-K, size divisibility and matmul precision. ``programs``: a folder of
        cached window programs (:mod:`~ov2seg_jax.inference.program_cache`) to run the window
        function through, instead of tracing the model in this process."""
        from ov2seg_jax.inference.program_cache import program_cache
        from ov2seg_jax.models.ov2seg import build_model

        model = build_model(model_cfg)
        forward = None
        if programs is not None:
            forward = program_cache(programs, jitted_forward(model, inference.matmul_precision))
        return cls(
            model,
            variables,
            classifier,
            window_size=inference.window_size,
            top_k=inference.top_k,
            size_divisibility=inference.size_divisibility,
            forward=forward,
            matmul_precision=inference.matmul_precision,
        )

    @classmethod
    def from_export(cls, exported, classifier, inference) -> VideoPredictor:
        """The predictor running an :class:`~ov2seg_jax.export.loaded.ExportedModel` with
        ``config.inference``'s window size and top-K (the model code is not used)."""
        return cls(
            None,
            exported.weights,
            classifier,
            window_size=inference.window_size,
            top_k=inference.top_k,
            size_divisibility=exported.size_divisibility,
            forward=exported.forward,
        )

    def window_outputs(self, images: jax.Array) -> dict[str, np.ndarray]:
        """Per-frame outputs for up to ``window_size`` normalised, padded frames."""
        n = images.shape[0]
        if n < self.window_size:
            pad = jnp.zeros((self.window_size - n, *images.shape[1:]), images.dtype)
            images = jnp.concatenate([images, pad])
        out = self._forward(self.variables, images, self.classifier)
        return {k: np.asarray(v[:n]) for k, v in out.items()}

    def predict(
        self, frames: np.ndarray, output_size: tuple[int, int] | None = None
    ) -> VideoPrediction:
        """``frames`` (T, H, W, 3) uint8 RGB at the network's input size; ``output_size`` the
        (height, width) of the returned masks (default: the input size)."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
            raise ValueError(f"frames must be a non-empty (T, H, W, 3) array, got {frames.shape}")
        t, h, w, _ = frames.shape
        hp, wp = padded_size(h, w, self.size_divisibility)
        state, windows = None, []
        for start in range(0, t, self.window_size):
            images = normalize_and_pad(
                frames[start : start + self.window_size], target_size=(hp, wp)
            )
            state, aligned = track_window(state, self.window_outputs(images))
            windows.append(aligned)
        tracked = assemble_result(state, windows)
        inst = instance_inference(
            tracked.pred_logits,
            tracked.pred_obj_logits,
            tracked.pred_masks,
            tracked.pred_per_frame_logits,
            tracked.pred_per_frame_obj_logits,
            top_k=self.top_k,
        )
        masks = masks_to_output(inst.pred_masks, (hp, wp), (h, w), output_size or (h, w))
        return VideoPrediction(
            np.asarray(inst.scores), np.asarray(inst.labels), masks, np.asarray(inst.query_index)
        )
