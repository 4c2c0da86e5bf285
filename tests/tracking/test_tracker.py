"""Tracker: parity with the original's ``post_processing`` and streaming behaviour."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ov2seg_jax.parity.report import format_table
from ov2seg_jax.parity.tracking_fixture import (
    ReplaySolver,
    check_tracking_dir,
    match_indices_row,
)
from ov2seg_jax.tracking.matching import embedding_cost, match_embeddings, solve_assignment
from ov2seg_jax.tracking.tracker import (
    TrackerState,
    assemble_result,
    track_video,
    track_window,
)


def _assert_rows_pass(rows, title: str) -> None:
    assert rows, f"{title}: no rows"
    table = format_table(rows, title)
    print(table)
    assert all(r.passed for r in rows), "\n" + table


def _fixture_subdir(root: str, name: str) -> str:
    path = os.path.join(root, name)
    if not os.path.isdir(path):
        pytest.skip(f"fixture folder {path} not present")
    return path


def _random_video(seed: int, t: int = 7, q: int = 6, d: int = 5, c: int = 4, hw=(3, 4)):
    """Drifting tracks, each frame's slots a random permutation of them."""
    rng = np.random.default_rng(seed)
    tracks = rng.standard_normal((q, d)).astype(np.float32)
    embds, logits, obj, masks = [], [], [], []
    track_logits = rng.standard_normal((q, c + 1)).astype(np.float32)
    track_logits[:, -1] = 0
    for _ in range(t):
        tracks = tracks + 0.1 * rng.standard_normal((q, d)).astype(np.float32)
        perm = rng.permutation(q)
        embds.append(tracks[perm])
        logits.append(
            track_logits[perm] + 0.05 * rng.standard_normal((q, c + 1)).astype(np.float32)
        )
        obj.append(rng.standard_normal((q, 2)).astype(np.float32)[perm])
        masks.append(rng.standard_normal((q, *hw)).astype(np.float32)[perm])
    return tuple(np.stack(x).astype(np.float32) for x in (embds, logits, obj, masks))


# ---------------------------------------------------------------------------------------------
# Fixture parity
# ---------------------------------------------------------------------------------------------


def test_tracking_dir_parity(fixtures_root):
    rows = check_tracking_dir(_fixture_subdir(fixtures_root, "tracking"))
    _assert_rows_pass(rows, "tracking/ (synthetic tracker and read-out cases)")
    # Case prefixes are discovered from the file: every case contributes a match-indices row.
    with np.load(os.path.join(fixtures_root, "tracking", "synthetic_tracking.npz")) as f:
        cases = {k.rsplit("/", 1)[0] for k in f.files if "/" in k}
    assert {r.name.split("/")[1] for r in rows if r.name.endswith("match_indices")} == cases


def test_exact_tie_is_accepted_only_for_real_ties(fixtures_root):
    """A different optimal permutation passes; a worse one fails."""
    path = os.path.join(_fixture_subdir(fixtures_root, "tracking"), "synthetic_tracking.npz")
    with np.load(path) as f:
        store = {k: f[k] for k in f.files if k.startswith("exact_tie/")}
    if not store:
        pytest.skip("no exact_tie case in this fixture folder")
    inputs = [
        store[f"exact_tie/{k}"]
        for k in ("pred_embds", "pred_logits", "pred_object_logits", "pred_masks")
    ]
    ref_idx, ref_cost = store["exact_tie/match_indices"], store["exact_tie/match_cost"]

    # Slots whose cost rows are identical may trade their queries without changing the total.
    tied = [
        (a, b)
        for a in range(ref_cost.shape[1])
        for b in range(a + 1, ref_cost.shape[1])
        if np.array_equal(ref_cost[0, a], ref_cost[0, b])
    ]
    assert tied, "the exact_tie case should have identical cost rows"
    a, b = tied[0]
    alt = ref_idx.copy()
    alt[0, [a, b]] = alt[0, [b, a]]
    solver = ReplaySolver(alt)
    track_video(*inputs, solver=solver)
    row = match_indices_row("tie", solver, alt, ref_cost)
    assert row.passed and row.max_abs > 0, row

    # Swapping two slots that do not tie changes the total cost: must fail.
    c = next(s for s in range(ref_cost.shape[1]) if s not in (a, b))
    worse = ref_idx.copy()
    worse[0, [a, c]] = worse[0, [c, a]]
    solver = ReplaySolver(worse)
    track_video(*inputs, solver=solver)
    assert not match_indices_row("no tie", solver, worse, ref_cost).passed


# ---------------------------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window_size", [1, 2, 3, 5])
def test_window_by_window_equals_whole_video(window_size):
    video = _random_video(seed=3)
    whole = track_video(*video)
    chunked = track_video(*video, window_size=window_size)
    for field in whole._fields:
        np.testing.assert_array_equal(getattr(chunked, field), getattr(whole, field), err_msg=field)
    # The synthetic tracks were shuffled, so the tracker must have done real work.
    assert not np.array_equal(whole.match_indices, np.tile(np.arange(6), (6, 1)))


def test_streaming_state_is_small_and_exact(fixtures_root):
    """Feed the 12-frame clip as the original's windows (10 + 2) through explicit states."""
    path = os.path.join(_fixture_subdir(fixtures_root, "ov2seg_small"), "long_window_outputs.npz")
    with np.load(path) as f:
        win = {k: f[k] for k in f.files}
    whole = track_video(
        win["pred_embds"], win["pred_logits"], win["pred_object_logits"], win["pred_masks"]
    )
    state, windows = None, []
    t = win["pred_embds"].shape[0]
    for start in range(0, t, 10):
        state, aligned = track_window(state, {k: v[start : start + 10] for k, v in win.items()})
        windows.append(aligned)
        q, d = win["pred_embds"].shape[1:]
        assert state.memory.shape == (q, d)
        assert state.logit_sum.shape == win["pred_logits"].shape[1:]
        assert state.object_logit_sum.shape == (q, 2)
        assert aligned.frame_offset == start
        assert aligned.slot_indices.shape == (aligned.num_frames, q)
    assert windows[0].match_indices.shape[0] == 9 and windows[1].match_indices.shape[0] == 2
    streamed = assemble_result(state, windows)
    for field in whole._fields:
        np.testing.assert_array_equal(
            getattr(streamed, field), getattr(whole, field), err_msg=field
        )


def test_state_is_not_mutated():
    video = _random_video(seed=5, t=4)
    window = dict(
        zip(("pred_embds", "pred_logits", "pred_object_logits", "pred_masks"), video, strict=True)
    )
    state, _ = track_window(None, {k: v[:2] for k, v in window.items()})
    before = (state.memory.copy(), state.logit_sum.copy(), state.num_frames)
    track_window(state, {k: v[2:] for k, v in window.items()})
    np.testing.assert_array_equal(state.memory, before[0])
    np.testing.assert_array_equal(state.logit_sum, before[1])
    assert state.num_frames == before[2]


# ---------------------------------------------------------------------------------------------
# Hand-made cases
# ---------------------------------------------------------------------------------------------


def test_known_permutation_and_memory_update():
    eye = np.eye(3, dtype=np.float32)
    # Frame 1 lists the tracks in the order (2, 0, 1): slot 0 is frame 1's query 1, and so on.
    frame1 = eye[[2, 0, 1]] * np.float32(2.0)  # scaling must not matter (cosine)
    embds = np.stack([eye, frame1])
    logits = np.zeros((2, 3, 4), np.float32)
    logits[0, :, 0] = [10, 20, 30]
    logits[1, :, 0] = [31, 11, 21]  # the same tracks' values, shuffled like the embeddings
    obj = np.zeros((2, 3, 2), np.float32)
    masks = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)

    result = track_video(embds, logits, obj, masks)
    np.testing.assert_array_equal(result.match_indices, [[1, 2, 0]])
    np.testing.assert_allclose(np.diag(result.match_cost[0][:, [1, 2, 0]]), 0, atol=1e-6)
    np.testing.assert_allclose(result.pred_per_frame_logits[:, 1, 0], [11, 21, 31])
    np.testing.assert_allclose(result.pred_logits[:, 0], [10.5, 20.5, 30.5])
    np.testing.assert_array_equal(result.pred_masks[:, 1], masks[1][[1, 2, 0]])

    state, _ = track_window(
        None,
        {
            "pred_embds": embds,
            "pred_logits": logits,
            "pred_object_logits": obj,
            "pred_masks": masks,
        },
    )
    np.testing.assert_allclose(state.memory, 0.7 * frame1[[1, 2, 0]] + 0.3 * eye, rtol=1e-6)
    assert state.num_frames == 2


def test_match_embeddings_cost_layout():
    memory = np.array([[1, 0], [0, 1]], np.float32)
    current = np.array([[0, 3], [4, 0]], np.float32)
    m = match_embeddings(memory, current)
    np.testing.assert_array_equal(m.indices, [1, 0])
    np.testing.assert_allclose(m.cost, [[1, 0], [0, 1]], atol=1e-7)  # rows = memory slots
    np.testing.assert_array_equal(solve_assignment(m.cost), [1, 0])


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def _window(t=3, q=4, d=5, c=3, hw=(2, 2)):
    rng = np.random.default_rng(0)
    return {
        "pred_embds": rng.standard_normal((t, q, d)).astype(np.float32),
        "pred_logits": rng.standard_normal((t, q, c + 1)).astype(np.float32),
        "pred_object_logits": rng.standard_normal((t, q, 2)).astype(np.float32),
        "pred_masks": rng.standard_normal((t, q, *hw)).astype(np.float32),
    }


def test_shape_errors_name_the_argument():
    w = _window()
    bad = dict(w, pred_logits=w["pred_logits"][:, :3])
    with pytest.raises(ValueError, match=r"pred_logits.*\(3, 3, 4\).*\(T, Q\) = \(3, 4\)"):
        track_window(None, bad)
    with pytest.raises(ValueError, match=r"pred_masks.*4-D"):
        track_window(None, dict(w, pred_masks=w["pred_masks"][0]))
    with pytest.raises(ValueError, match=r"pred_object_logits.*\(T, Q, 2\)"):
        track_window(None, dict(w, pred_object_logits=np.zeros((3, 4, 3), np.float32)))
    with pytest.raises(KeyError, match="pred_embds"):
        track_window(None, {k: v for k, v in w.items() if k != "pred_embds"})
    with pytest.raises(ValueError, match="no frames"):
        track_window(None, {k: v[:0] for k, v in w.items()})
    with pytest.raises(ValueError, match="window_size"):
        track_video(*w.values(), window_size=0)


def test_state_mismatch_errors():
    state, _ = track_window(None, _window())
    with pytest.raises(ValueError, match=r"pred_embds.*\(Q, D\) = \(4, 5\)"):
        track_window(state, _window(d=6))
    with pytest.raises(ValueError, match=r"C\+1 = 4"):
        track_window(state, _window(c=5))
    assert isinstance(state, TrackerState)


def test_matching_errors():
    with pytest.raises(ValueError, match=r"memory and current.*\(3, 2\).*\(4, 2\)"):
        match_embeddings(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"current must be 2-D.*\(4,\)"):
        embedding_cost(np.ones((3, 2)), np.ones(4))
    with pytest.raises(ValueError, match="non-finite"):
        match_embeddings(np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="permutation"):
        match_embeddings(np.eye(2), np.eye(2), solver=lambda c: np.array([0, 0]))
