"""Streaming query tracker: the original's ``post_processing`` in a form that consumes windows.

The original runs the decoder over windows of frames, concatenates every frame's outputs and then
tracks queries across the whole video:

* frame 0 is kept as it is (identity) and its query embeddings become the memory;
* every later frame is matched to the memory
  (:func:`~ov2seg_jax.tracking.matching.match_embeddings`); its class logits, object logits, mask
  logits and embeddings are gathered into slot order, and the memory becomes
  ``0.7 * aligned embeddings + 0.3 * memory``;
* the video-level logits are the plain running sum of the aligned per-frame logits divided by the
  number of frames.

Only the memory (Q, D), the two running sums (Q, C+1), (Q, 2) and the frame count depend on the
past, so :class:`TrackerState` carries just those and :func:`track_window` can be fed one window at
a time, with the aligned per-frame tensors handed back to the caller. Feeding a video window by
window gives bit-for-bit the same result as feeding it at once (the running sum adds frames in the
same order either way).

Layouts: window inputs are frame-major as the model returns them, ``(T, Q, ...)``; the video-level
result of :func:`track_video` is query-major like the original's, ``(Q, T, ...)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from ov2seg_jax.tracking.matching import AssignmentSolver, match_embeddings

MEMORY_MOMENTUM = 0.7  # weight of the aligned current frame in the memory update (a code constant)

# The per-frame model outputs a window of the tracker consists of (track_video argument order).
WINDOW_KEYS = ("pred_embds", "pred_logits", "pred_object_logits", "pred_masks")


@dataclasses.dataclass(frozen=True)
class TrackerState:
    """What the tracker carries from one window to the next.

    ``memory`` (Q, D) float32: slot embeddings (the last aligned frame blended with the past).
    ``logit_sum`` (Q, C+1) float32: running sum of the aligned class logits.
    ``object_logit_sum`` (Q, 2) float32: running sum of the aligned object logits.
    ``num_frames``: how many frames have been consumed.
    """

    memory: np.ndarray
    logit_sum: np.ndarray
    object_logit_sum: np.ndarray
    num_frames: int

    @property
    def num_queries(self) -> int:
        return int(self.memory.shape[0])

    def mean_logits(self) -> np.ndarray:
        """Frame-averaged class logits (Q, C+1): running sum divided by the frame count."""
        return (self.logit_sum / np.float32(self.num_frames)).astype(np.float32)

    def mean_object_logits(self) -> np.ndarray:
        """Frame-averaged object logits (Q, 2)."""
        return (self.object_logit_sum / np.float32(self.num_frames)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class AlignedWindow:
    """One window's outputs in slot order.

    ``frame_offset``: video index of the window's first frame.
    ``pred_logits`` (T, Q, C+1), ``pred_object_logits`` (T, Q, 2), ``pred_masks`` (T, Q, h, w):
    the window's per-frame outputs gathered into slot order.
    ``match_indices`` (M, Q) int64 and ``match_cost`` (M, Q, Q) float32: one row per matched frame,
    i.e. every frame of the window except video frame 0 (M = T - 1 for the first window, else T).
    """

    frame_offset: int
    pred_logits: np.ndarray
    pred_object_logits: np.ndarray
    pred_masks: np.ndarray
    match_indices: np.ndarray
    match_cost: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.pred_logits.shape[0])

    @property
    def slot_indices(self) -> np.ndarray:
        """(T, Q) int64: each frame's query in each slot (identity for video frame 0)."""
        if self.frame_offset > 0:
            return self.match_indices
        q = self.pred_logits.shape[1]
        return np.concatenate([np.arange(q, dtype=np.int64)[None], self.match_indices], axis=0)


class TrackResult(NamedTuple):
    """Tracked video, in the original's query-major layout.

    ``pred_logits`` (Q, C+1): aligned class logits averaged over frames.
    ``pred_obj_logits`` (Q, 2): aligned object logits averaged over frames.
    ``pred_per_frame_logits`` (Q, T, C+1), ``pred_per_frame_obj_logits`` (Q, T, 2),
    ``pred_masks`` (Q, T, h, w): aligned per-frame outputs.
    ``match_indices`` (T-1, Q) int64: row i is frame i+1; entry s = that frame's query in slot s.
    ``match_cost`` (T-1, Q, Q) float32: the cost matrices as solved (rows = slots).
    """

    pred_logits: np.ndarray
    pred_obj_logits: np.ndarray
    pred_per_frame_logits: np.ndarray
    pred_per_frame_obj_logits: np.ndarray
    pred_masks: np.ndarray
    match_indices: np.ndarray
    match_cost: np.ndarray


def _window_arrays(window: Mapping[str, object]) -> dict[str, np.ndarray]:
    """Validate a window's four outputs and return them as float32 arrays."""
    missing = [k for k in WINDOW_KEYS if k not in window]
    if missing:
        raise KeyError(f"window is missing {missing}; it needs {list(WINDOW_KEYS)}")
    arrays = {k: np.asarray(window[k], dtype=np.float32) for k in WINDOW_KEYS}
    expected_ndim = {"pred_embds": 3, "pred_logits": 3, "pred_object_logits": 3, "pred_masks": 4}
    for k, nd in expected_ndim.items():
        if arrays[k].ndim != nd:
            layout = "(T, Q, h, w)" if nd == 4 else "(T, Q, ...)"
            raise ValueError(f"window[{k!r}] must be {nd}-D {layout}, got shape {arrays[k].shape}")
    t, q = arrays["pred_embds"].shape[:2]
    if t == 0:
        raise ValueError(
            f"window has no frames (pred_embds has shape {arrays['pred_embds'].shape})"
        )
    for k in WINDOW_KEYS:
        if arrays[k].shape[:2] != (t, q):
            raise ValueError(
                f"window[{k!r}] has shape {arrays[k].shape}, but pred_embds says (T, Q) = {(t, q)}"
            )
    if arrays["pred_object_logits"].shape[2] != 2:
        raise ValueError(
            "window['pred_object_logits'] must be (T, Q, 2), got "
            f"{arrays['pred_object_logits'].shape}"
        )
    return arrays


def _check_against_state(state: TrackerState, arrays: dict[str, np.ndarray]) -> None:
    q, d = state.memory.shape
    emb = arrays["pred_embds"]
    if emb.shape[1:] != (q, d):
        raise ValueError(
            f"window['pred_embds'] has shape {emb.shape}, but the tracker state holds "
            f"(Q, D) = {(q, d)}"
        )
    c1 = state.logit_sum.shape[1]
    if arrays["pred_logits"].shape[2] != c1:
        raise ValueError(
            f"window['pred_logits'] has shape {arrays['pred_logits'].shape}, but the tracker state "
            f"has C+1 = {c1} classes"
        )


def initial_state(pred_embds0, pred_logits0, pred_object_logits0) -> TrackerState:
    """State after video frame 0: memory = its embeddings (Q, D), sums = its logits."""
    return TrackerState(
        memory=np.array(pred_embds0, dtype=np.float32),
        logit_sum=np.array(pred_logits0, dtype=np.float32),
        object_logit_sum=np.array(pred_object_logits0, dtype=np.float32),
        num_frames=1,
    )


def update_memory(memory: np.ndarray, aligned_embds: np.ndarray) -> np.ndarray:
    """``0.7 * aligned + 0.3 * memory`` in float32 (both (Q, D))."""
    alpha = np.float32(MEMORY_MOMENTUM)
    beta = np.float32(1.0 - MEMORY_MOMENTUM)
    return (alpha * aligned_embds + beta * memory).astype(np.float32)


def track_window(
    state: TrackerState | None,
    window: Mapping[str, object],
    *,
    solver: AssignmentSolver | None = None,
) -> tuple[TrackerState, AlignedWindow]:
    """Consume one window of per-frame outputs and return ``(new_state, aligned)``.

    ``window`` maps ``pred_embds`` (T, Q, D), ``pred_logits`` (T, Q, C+1), ``pred_object_logits``
    (T, Q, 2) and ``pred_masks`` (T, Q, h, w) to arrays (extra keys are ignored). ``state`` is
    ``None`` for the window that starts the video: its frame 0 is the identity and initialises the
    memory. ``solver`` optionally replaces scipy's assignment (see
    :func:`~ov2seg_jax.tracking.matching.match_embeddings`). The input state is not modified.
    """
    arrays = _window_arrays(window)
    embds, logits = arrays["pred_embds"], arrays["pred_logits"]
    obj, masks = arrays["pred_object_logits"], arrays["pred_masks"]
    t, q = embds.shape[:2]

    first = 0
    if state is None:
        state = initial_state(embds[0], logits[0], obj[0])
        frame_offset = 0
        first = 1
    else:
        _check_against_state(state, arrays)
        frame_offset = state.num_frames

    memory = state.memory
    logit_sum = state.logit_sum
    obj_sum = state.object_logit_sum
    all_indices = np.empty((t, q), dtype=np.int64)
    all_indices[0] = np.arange(q)
    costs = []
    for i in range(first, t):
        match = match_embeddings(memory, embds[i], solver=solver)
        idx = match.indices
        all_indices[i] = idx
        costs.append(match.cost)
        # Frames are added one at a time so the float32 sum has the original's order.
        logit_sum = (logit_sum + logits[i][idx]).astype(np.float32)
        obj_sum = (obj_sum + obj[i][idx]).astype(np.float32)
        memory = update_memory(memory, embds[i][idx])

    frame_axis = np.arange(t)[:, None]
    aligned = AlignedWindow(
        frame_offset=frame_offset,
        pred_logits=logits[frame_axis, all_indices],
        pred_object_logits=obj[frame_axis, all_indices],
        pred_masks=masks[frame_axis, all_indices],
        match_indices=all_indices[first:],
        match_cost=(np.stack(costs) if costs else np.zeros((0, q, q), np.float32)),
    )
    new_state = TrackerState(
        memory=memory,
        logit_sum=logit_sum,
        object_logit_sum=obj_sum,
        num_frames=state.num_frames + t - first,
    )
    return new_state, aligned


def assemble_result(state: TrackerState, windows: list[AlignedWindow]) -> TrackResult:
    """Join the aligned windows of a whole video (in order) with the final state."""
    if not windows:
        raise ValueError("no windows to assemble")
    total = sum(w.num_frames for w in windows)
    if total != state.num_frames:
        raise ValueError(f"windows hold {total} frames but the state has seen {state.num_frames}")
    per_frame_logits = np.concatenate([w.pred_logits for w in windows], axis=0)
    per_frame_obj = np.concatenate([w.pred_object_logits for w in windows], axis=0)
    masks = np.concatenate([w.pred_masks for w in windows], axis=0)
    return TrackResult(
        pred_logits=state.mean_logits(),
        pred_obj_logits=state.mean_object_logits(),
        pred_per_frame_logits=np.ascontiguousarray(per_frame_logits.transpose(1, 0, 2)),
        pred_per_frame_obj_logits=np.ascontiguousarray(per_frame_obj.transpose(1, 0, 2)),
        pred_masks=np.ascontiguousarray(masks.transpose(1, 0, 2, 3)),
        match_indices=np.concatenate([w.match_indices for w in windows], axis=0),
        match_cost=np.concatenate([w.match_cost for w in windows], axis=0),
    )


def track_video(
    pred_embds,
    pred_logits,
    pred_object_logits,
    pred_masks,
    window_size: int | None = None,
    *,
    solver: AssignmentSolver | None = None,
) -> TrackResult:
    """Track a whole video given its per-frame outputs (all frame-major, ``(T, Q, ...)``).

    ``pred_embds`` (T, Q, D), ``pred_logits`` (T, Q, C+1), ``pred_object_logits`` (T, Q, 2),
    ``pred_masks`` (T, Q, h, w). ``window_size`` feeds the frames to :func:`track_window` in chunks
    of that many frames (``None``: all at once); the result does not depend on it.
    """
    window = {
        "pred_embds": pred_embds,
        "pred_logits": pred_logits,
        "pred_object_logits": pred_object_logits,
        "pred_masks": pred_masks,
    }
    arrays = _window_arrays(window)
    t = arrays["pred_embds"].shape[0]
    if window_size is None:
        window_size = t
    if window_size < 1:
        raise ValueError(f"window_size must be a positive number of frames, got {window_size}")
    state: TrackerState | None = None
    windows: list[AlignedWindow] = []
    for start in range(0, t, window_size):
        chunk = {k: v[start : start + window_size] for k, v in arrays.items()}
        state, aligned = track_window(state, chunk, solver=solver)
        windows.append(aligned)
    assert state is not None
    return assemble_result(state, windows)
