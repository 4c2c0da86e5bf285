"""Parity rows for the tracker and the instance read-out against the original's fixtures.

Two entry points, both returning :class:`~ov2seg_jax.parity.report.Row` lists for
:func:`~ov2seg_jax.parity.report.format_table`:

* :func:`check_tracking_dir` for a ``tracking/``-layout folder (``synthetic_tracking.npz`` with
  one key prefix per case, ``synthetic_instance_inference.npz``);
* :func:`check_post_processing` for a model folder (``ov2seg_small/``, ``ov2seg_r50/``, ...):
  window outputs (ours or the stored ones) -> tracker -> read-out -> final resize, against
  ``{prefix}post_processing.npz`` and ``{prefix}instances.npz``.

Matching is compared exactly, except where the original's cost matrix has ties: then any optimal
assignment is acceptable if its total cost equals the original's within 1e-5 (scipy's tie-breaking
is not part of the model). To keep everything downstream comparable in that case, the tracker is
run with a solver that records our own choice at every step but continues with the original's;
when every choice agrees (the normal case) that run is exactly the free-running tracker.

Instances are compared as sets keyed by (query, label): the original's top-k is unsorted.
Every size comes from the fixture files, so other folders of the same layout work unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ov2seg_jax.parity.report import Row, Tolerance, compare, compare_exact, compare_fraction
from ov2seg_jax.parity.tolerances import LOGITS, MASK_LOGITS, MAX_MASK_PIXEL_FRACTION, SCORES
from ov2seg_jax.tracking.matching import assignment_total, solve_assignment
from ov2seg_jax.tracking.readout import InstanceResult, instance_inference, masks_to_output
from ov2seg_jax.tracking.tracker import WINDOW_KEYS, TrackResult, track_video

TIE_TOTAL_COST_ATOL = 1e-5
# Costs of identical inputs agree to a few float32 ulps; costs of our model's embeddings move with
# the embeddings (atol 2e-4 each, relative to norms of about 16), hence two bounds.
TOL_COST_SAME_INPUTS = Tolerance(1e-5)
TOL_COST_MODEL = Tolerance(2e-4)


# --------------------------------------------------------------------------------------------
# Matching: record our choice, continue with the original's
# --------------------------------------------------------------------------------------------


class ReplaySolver:
    """Assignment solver that solves each step itself but returns the original's indices.

    ``reference`` (S, Q): the original's indices per matched frame. Steps beyond it, or whose
    reference row is not a permutation of the right size, continue with our own choice.
    ``ours`` and ``costs`` record our choice and the cost matrix of every step.
    """

    def __init__(self, reference: np.ndarray | None):
        self.reference = None if reference is None else np.asarray(reference, np.int64)
        self.ours: list[np.ndarray] = []
        self.costs: list[np.ndarray] = []
        self.replayed: list[bool] = []

    def __call__(self, cost: np.ndarray) -> np.ndarray:
        step = len(self.ours)
        mine = solve_assignment(cost)
        self.ours.append(mine)
        self.costs.append(np.array(cost, np.float32))
        ref = None
        if self.reference is not None and step < self.reference.shape[0]:
            cand = self.reference[step]
            if cand.shape == mine.shape and np.array_equal(np.sort(cand), np.arange(mine.size)):
                ref = cand
        self.replayed.append(ref is not None)
        return mine if ref is None else ref


def match_indices_row(
    name: str, solver: ReplaySolver, ref_indices: np.ndarray, ref_cost: np.ndarray
) -> Row:
    """Exact comparison of the match indices, tie-aware.

    A step whose indices differ passes only if our optimal total cost (on our cost matrix) equals
    the original's total (its indices on its stored cost matrix) within 1e-5, i.e. the two
    solvers broke an exact tie differently.
    """
    ours = (
        np.stack(solver.ours) if solver.ours else np.zeros((0,) + ref_indices.shape[1:], np.int64)
    )
    criterion = f"exact (ties: total cost {TIE_TOTAL_COST_ATOL:g})"
    if ours.shape != ref_indices.shape:
        return Row(
            name,
            float("nan"),
            float("nan"),
            criterion,
            False,
            f"shape {ours.shape} != reference {ref_indices.shape}",
        )
    mismatches = int(np.sum(ours != ref_indices))
    differing = [i for i in range(ours.shape[0]) if not np.array_equal(ours[i], ref_indices[i])]
    if not differing:
        return Row(name, 0.0, 0.0, criterion, True, f"0 of {ref_indices.size} differ")
    gaps = []
    for i in differing:
        our_total = assignment_total(solver.costs[i], ours[i])
        ref_total = assignment_total(ref_cost[i], ref_indices[i])
        gaps.append(abs(our_total - ref_total))
    worst = max(gaps)
    passed = worst <= TIE_TOTAL_COST_ATOL
    note = (
        f"{mismatches} of {ref_indices.size} differ in {len(differing)} step(s); "
        f"optimal totals differ by at most {worst:.2e}"
        + ("; tie broken differently, later rows use the original's choice" if passed else "")
    )
    return Row(name, float(mismatches), mismatches / ref_indices.size, criterion, passed, note)


def _optional(store: Mapping[str, np.ndarray], key: str) -> np.ndarray | None:
    return np.asarray(store[key]) if key in store else None


def _squeeze_batch(x: np.ndarray | None, ndim: int) -> np.ndarray | None:
    """Drop the original's leading batch axis of 1 when present."""
    if x is not None and x.ndim == ndim + 1 and x.shape[0] == 1:
        return x[0]
    return x


def tracking_rows(
    tag: str,
    result: TrackResult,
    solver: ReplaySolver,
    refs: Mapping[str, np.ndarray | None],
    cost_tol: Tolerance,
    notes: Mapping[str, str] | None = None,
) -> list[Row]:
    """Rows for one tracked video. ``refs`` maps TrackResult field names to reference arrays
    (in TrackResult's layout; ``None`` = not available, no row)."""
    notes = notes or {}
    rows: list[Row] = []
    ref_idx, ref_cost = refs.get("match_indices"), refs.get("match_cost")
    if ref_idx is not None and ref_cost is not None:
        rows.append(match_indices_row(f"{tag}match_indices", solver, ref_idx, ref_cost))
    if ref_cost is not None:
        rows.append(compare(f"{tag}match_cost", result.match_cost, ref_cost, cost_tol))
    tolerances = {
        "pred_logits": LOGITS,
        "pred_obj_logits": LOGITS,
        "pred_per_frame_logits": LOGITS,
        "pred_per_frame_obj_logits": LOGITS,
        "pred_masks": MASK_LOGITS,
    }
    for field, tol in tolerances.items():
        ref = refs.get(field)
        if ref is not None:
            rows.append(
                compare(f"{tag}{field}", getattr(result, field), ref, tol, notes.get(field, ""))
            )
    return rows


# --------------------------------------------------------------------------------------------
# Instances: sets keyed by (query, label)
# --------------------------------------------------------------------------------------------


def align_instances(
    ours_query, ours_label, ref_query, ref_label
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Positions of the (query, label) pairs common to both sides.

    Returns ``(ours_pos, ref_pos, only_ours, only_ref)``: ``ours_pos[i]`` and ``ref_pos[i]`` hold
    the same pair (listed in our order), plus the counts of pairs found on one side only.
    """
    ref_pos_of = {
        (int(q), int(lab)): i for i, (q, lab) in enumerate(zip(ref_query, ref_label, strict=True))
    }
    ours_pos, ref_pos = [], []
    for i, (q, lab) in enumerate(zip(ours_query, ours_label, strict=True)):
        j = ref_pos_of.get((int(q), int(lab)))
        if j is not None:
            ours_pos.append(i)
            ref_pos.append(j)
    common = len(ours_pos)
    return (
        np.asarray(ours_pos, np.int64),
        np.asarray(ref_pos, np.int64),
        len(ours_query) - common,
        len(ref_query) - common,
    )


def instance_rows(
    tag: str,
    ours: InstanceResult,
    ref_query: np.ndarray,
    ref_label: np.ndarray,
    refs: Mapping[str, np.ndarray | None],
    notes: Mapping[str, str] | None = None,
) -> tuple[list[Row], np.ndarray, np.ndarray]:
    """Rows for the read-out, keyed by (query, label). ``refs`` may hold ``scores``,
    ``topk_flat_index``, ``pred_masks`` and ``frame_ignored`` in the reference's stored order.
    Returns the rows and the aligned positions (ours, reference)."""
    notes = notes or {}
    ours_pos, ref_pos, only_ours, only_ref = align_instances(
        ours.query_index, ours.labels, ref_query, ref_label
    )
    n_ref = len(ref_query)
    set_ok = only_ours == 0 and only_ref == 0 and len(ours.query_index) == n_ref
    rows = [
        Row(
            f"{tag}(query, label) set",
            float(only_ours + only_ref),
            (only_ours + only_ref) / max(n_ref, 1),
            "same set",
            set_ok,
            f"{len(ours_pos)} of {n_ref} pairs common, {only_ours} only ours, "
            f"{only_ref} only original's",
        )
    ]
    checks: dict[str, Tolerance | None] = {  # None: exact
        "scores": SCORES,
        "topk_flat_index": None,
        "pred_masks": MASK_LOGITS,
        "frame_ignored": None,
    }
    for field, tol in checks.items():
        ref = refs.get(field)
        if ref is None:
            continue
        mine = getattr(ours, field)[ours_pos]
        theirs = np.asarray(ref)[ref_pos]
        name = f"{tag}{field} (by query, label)"
        note = notes.get(field, "")
        if tol is None:
            rows.append(compare_exact(name, mine, theirs, note))
        else:
            rows.append(compare(name, mine, theirs, tol, note))
    return rows, ours_pos, ref_pos


# --------------------------------------------------------------------------------------------
# tracking/ folder
# --------------------------------------------------------------------------------------------


def tracking_cases(store: Mapping[str, np.ndarray]) -> list[str]:
    """Case prefixes (``"drift"``, ...) of a ``synthetic_tracking.npz``, in order of appearance."""
    cases: list[str] = []
    for key in store:
        if "/" in key:
            case = key.rsplit("/", 1)[0]
            if case not in cases:
                cases.append(case)
    return cases


def _case_rows(tag: str, store: Mapping[str, np.ndarray], case: str) -> list[Row]:
    def get(key: str) -> np.ndarray | None:
        return _optional(store, f"{case}/{key}")

    inputs = [get(k) for k in WINDOW_KEYS]
    if any(x is None for x in inputs):
        missing = [k for k, x in zip(WINDOW_KEYS, inputs, strict=True) if x is None]
        return [
            Row(
                f"{tag}inputs",
                float("nan"),
                float("nan"),
                "present",
                False,
                f"case {case!r} lacks {missing}",
            )
        ]
    embds, logits, obj, masks = inputs
    solver = ReplaySolver(get("match_indices"))
    result = track_video(embds, logits, obj, masks, solver=solver)
    refs = {
        "match_indices": get("match_indices"),
        "match_cost": get("match_cost"),
        "pred_logits": _squeeze_batch(get("out_pred_logits"), 2),
        "pred_obj_logits": _squeeze_batch(get("out_pred_obj_logits"), 2),
        "pred_per_frame_logits": get("out_pred_per_frame_logits"),
        "pred_per_frame_obj_logits": get("out_pred_per_frame_obj_logits"),
        "pred_masks": _squeeze_batch(get("out_pred_masks"), 4),
    }
    return tracking_rows(tag, result, solver, refs, TOL_COST_SAME_INPUTS)


def _instance_inference_rows(tag: str, store: Mapping[str, np.ndarray]) -> list[Row]:
    q, c1 = store["mask_cls"].shape
    top_k = int(store["topk"]) if "topk" in store else int(store["out_scores"].shape[0])
    ours = instance_inference(
        store["mask_cls"],
        store["mask_object_cls"],
        store["mask_pred"],
        store["mask_per_frame_cls"],
        store["mask_per_frame_object_cls"],
        top_k,
    )
    ref_query = np.asarray(store["out_query_index"])
    ref_label = np.asarray(store["out_labels"])
    refs = {
        "scores": _optional(store, "out_scores"),
        "topk_flat_index": (
            _optional(store, "out_topk_flat_index")
            if "out_topk_flat_index" in store
            else ref_query * (c1 - 1) + ref_label
        ),
        "pred_masks": _optional(store, "out_pred_masks"),
        "frame_ignored": _optional(store, "out_frame_ignored"),
    }
    ignored = refs["frame_ignored"]
    notes = {}
    if ignored is not None:
        notes["frame_ignored"] = f"{int(np.sum(ignored))} of {ignored.size} frames ignored"
    rows, _, _ = instance_rows(tag, ours, ref_query, ref_label, refs, notes)
    return rows


def check_tracking_dir(path: str) -> list[Row]:
    """Compare the tracker and the read-out with a ``tracking/``-layout folder."""
    name = os.path.basename(os.path.normpath(path))
    rows: list[Row] = []
    track_file = os.path.join(path, "synthetic_tracking.npz")
    if os.path.exists(track_file):
        with np.load(track_file) as f:
            store = {k: f[k] for k in f.files}
        for case in tracking_cases(store):
            rows += _case_rows(f"{name}/{case}/", store, case)
    inst_file = os.path.join(path, "synthetic_instance_inference.npz")
    if os.path.exists(inst_file):
        with np.load(inst_file) as f:
            store = {k: f[k] for k in f.files}
        rows += _instance_inference_rows(f"{name}/instance_inference/", store)
    if not rows:
        raise FileNotFoundError(
            f"no synthetic_tracking.npz or synthetic_instance_inference.npz in {path}"
        )
    return rows


# --------------------------------------------------------------------------------------------
# Model folders: window outputs -> tracker -> read-out -> final masks
# --------------------------------------------------------------------------------------------


def _load(path: str) -> dict[str, np.ndarray] | None:
    if not os.path.exists(path):
        return None
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _slot_permutations(match_indices: np.ndarray) -> np.ndarray:
    """(T, Q): identity for frame 0, then the stored match indices."""
    q = match_indices.shape[1]
    return np.concatenate([np.arange(q, dtype=np.int64)[None], match_indices.astype(np.int64)])


def rebuild_reference(
    window: Mapping[str, np.ndarray], match_indices: np.ndarray
) -> dict[str, np.ndarray]:
    """What the original's tracker produced, rebuilt from its window outputs and match indices.

    Used for arrays a fixture does not store (the README states they are exactly these gathers
    and a float32 mean over frames). Returns TrackResult-layout arrays.
    """
    perm = _slot_permutations(match_indices)
    frames = np.arange(perm.shape[0])[:, None]
    logits = np.asarray(window["pred_logits"], np.float32)[frames, perm]  # (T, Q, C+1)
    obj = np.asarray(window["pred_object_logits"], np.float32)[frames, perm]
    masks = np.asarray(window["pred_masks"], np.float32)[frames, perm]
    return {
        "pred_logits": logits.mean(axis=0, dtype=np.float32),
        "pred_obj_logits": obj.mean(axis=0, dtype=np.float32),
        "pred_per_frame_logits": logits.transpose(1, 0, 2),
        "pred_per_frame_obj_logits": obj.transpose(1, 0, 2),
        "pred_masks": masks.transpose(1, 0, 2, 3),
    }


def _sizes(
    inst: Mapping[str, np.ndarray], clip: Mapping[str, np.ndarray] | None
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(padded_size, image_size, output_size) from instances.npz, falling back to clip.npz."""

    def pair(x) -> tuple[int, int]:
        v = np.asarray(x).reshape(-1)
        return int(v[0]), int(v[1])

    if "output_size" in inst:
        output = pair(inst["output_size"])
    elif clip is not None and "height" in clip and "width" in clip:
        output = (int(clip["height"]), int(clip["width"]))
    else:
        raise KeyError(
            "neither instances.npz (output_size) nor clip.npz (height, width) gives the output size"
        )
    if "image_size" in inst:
        image = pair(inst["image_size"])
    elif clip is not None and "frames" in clip:
        image = (int(clip["frames"].shape[1]), int(clip["frames"].shape[2]))
    else:
        raise KeyError("instances.npz has no image_size and clip.npz no frames")
    if "padded_size" in inst:
        padded = pair(inst["padded_size"])
    else:  # the model pads to a multiple of 32
        padded = (-(-image[0] // 32) * 32, -(-image[1] // 32) * 32)
    return padded, image, output


def _unpack_masks(inst: Mapping[str, np.ndarray]) -> np.ndarray | None:
    if "masks_final" not in inst:
        return None
    shape = tuple(int(v) for v in np.asarray(inst["masks_final_shape"]).reshape(-1))
    bits = np.unpackbits(inst["masks_final"], axis=-1)[..., : shape[-1]]
    return bits.reshape(shape).astype(bool)


def check_post_processing(
    window_outputs: Mapping[str, np.ndarray],
    fixture_dir: str,
    prefix: str = "",
    *,
    cost_tol: Tolerance = TOL_COST_MODEL,
) -> list[Row]:
    """Track ``window_outputs`` and read out instances; compare with ``{prefix}post_processing.npz``
    and ``{prefix}instances.npz`` in ``fixture_dir``.

    ``window_outputs``: ``pred_embds`` (T, Q, D), ``pred_logits`` (T, Q, C+1),
    ``pred_object_logits`` (T, Q, 2), ``pred_masks`` (T, Q, h, w) — our model's or the stored
    ``{prefix}window_outputs.npz``. Arrays a fixture does not store (the per-frame logits of R50,
    the averaged logits of Swin-B, the aligned masks, the long clip's instance mask logits) are
    rebuilt from the stored window outputs and match indices, as the README describes.
    """
    tag = f"{os.path.basename(os.path.normpath(fixture_dir))}/{prefix}"
    missing = [k for k in WINDOW_KEYS if k not in window_outputs]
    if missing:
        raise KeyError(f"window_outputs lacks {missing}; it needs {list(WINDOW_KEYS)}")
    pp = _load(os.path.join(fixture_dir, f"{prefix}post_processing.npz"))
    inst = _load(os.path.join(fixture_dir, f"{prefix}instances.npz"))
    if pp is None or inst is None:
        raise FileNotFoundError(
            f"{fixture_dir} lacks {prefix}post_processing.npz or {prefix}instances.npz"
        )
    clip = _load(os.path.join(fixture_dir, f"{prefix}clip.npz"))
    ref_window = _load(os.path.join(fixture_dir, f"{prefix}window_outputs.npz"))

    ref_idx = _optional(pp, "match_indices")
    solver = ReplaySolver(ref_idx)
    result = track_video(*(window_outputs[k] for k in WINDOW_KEYS), solver=solver)

    # ---- tracking -------------------------------------------------------------------------
    refs: dict[str, np.ndarray | None] = {
        "match_indices": ref_idx,
        "match_cost": _optional(pp, "match_cost"),
        "pred_logits": _squeeze_batch(_optional(pp, "pred_logits"), 2),
        "pred_obj_logits": _squeeze_batch(_optional(pp, "pred_obj_logits"), 2),
        "pred_per_frame_logits": _optional(pp, "pred_per_frame_logits"),
        "pred_per_frame_obj_logits": _optional(pp, "pred_per_frame_obj_logits"),
        "pred_masks": None,
    }
    notes: dict[str, str] = {}
    rebuilt = None
    if ref_window is not None and ref_idx is not None:
        rebuilt = rebuild_reference(ref_window, ref_idx)
        for field, value in rebuilt.items():
            if refs.get(field) is None:
                refs[field] = value
                notes[field] = "rebuilt from stored window outputs + match indices"
    rows = tracking_rows(tag, result, solver, refs, cost_tol, notes)

    # ---- read-out ---------------------------------------------------------------------------
    ref_query = np.asarray(inst["query_index"])
    ref_label = np.asarray(inst["labels"])
    top_k = int(inst["scores"].shape[0])
    ours = instance_inference(
        result.pred_logits,
        result.pred_obj_logits,
        result.pred_masks,
        result.pred_per_frame_logits,
        result.pred_per_frame_obj_logits,
        top_k,
    )
    inst_refs = {
        "scores": _optional(inst, "scores"),
        "topk_flat_index": _optional(inst, "topk_flat_index"),
        "pred_masks": _optional(inst, "pred_masks"),
        "frame_ignored": _optional(inst, "frame_ignored"),
    }
    inst_notes: dict[str, str] = {}
    if inst_refs["frame_ignored"] is not None:
        ign = inst_refs["frame_ignored"]
        inst_notes["frame_ignored"] = f"{int(np.sum(ign))} of {ign.size} frames ignored"
    if (
        inst_refs["pred_masks"] is None
        and rebuilt is not None
        and inst_refs["frame_ignored"] is not None
    ):
        masks = rebuilt["pred_masks"][ref_query].copy()
        masks[inst_refs["frame_ignored"]] = np.float32(-1.0)
        inst_refs["pred_masks"] = masks
        inst_notes["pred_masks"] = "rebuilt from stored window outputs, indices, frame_ignored"
    inst_rows, ours_pos, ref_pos = instance_rows(
        tag + "instances.", ours, ref_query, ref_label, inst_refs, inst_notes
    )
    rows += inst_rows

    # ---- final binary masks -------------------------------------------------------------------
    ref_final = _unpack_masks(inst)
    if ref_final is not None:
        padded, image, output = _sizes(inst, clip)
        final = masks_to_output(ours.pred_masks[ours_pos], padded, image, output)
        near = inst.get("resized_count_abs_lt_1e-3")
        note = f"{int(np.sum(final != ref_final[ref_pos]))} of {final.size} pixels differ"
        if near is not None:
            note += f"; original has {int(near)} resized logits within 1e-3 of 0"
        rows.append(
            compare_fraction(
                f"{tag}instances.masks_final (by query, label)",
                final,
                ref_final[ref_pos],
                MAX_MASK_PIXEL_FRACTION,
                note,
            )
        )
    return rows
