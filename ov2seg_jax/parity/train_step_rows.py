"""The parity table of one replayed training step (see :mod:`ov2seg_jax.parity.train_step_fixture`).

Tolerances, from the fixture's float64 rerun (the original's own float32 noise, same draws):

* predictions: the project's forward policy (:mod:`ov2seg_jax.parity.tolerances`); the recorded
  float32 noise is 4e-6 (logits) / 2e-5 (mask logits);
* matches exact (every matching beats the next assignment by >= 0.077 in cost);
* loss terms and total: ``1e-5`` absolute + relative (float32 noise <= 4.9e-7 relative);
* global norm and clip coefficient: ``rtol 5e-5`` (noise 2.8e-6);
* gradients stored in full: ``|d| <= 1e-4 * max|g_ref|`` elementwise (~40x the noise of 2.4e-6);
  gradients stored as summaries: ``grad_l2`` ``rtol 1e-4``, ``grad_proj`` / ``grad_sum`` within
  ``1e-4`` / ``3e-4 x grad_l2`` (noise 3.1e-6 / 2.7e-5), the 16 samples as the full tensors;
* lr and weight decay exact;
* after-step values: ``|d| <= 8 ulp(max(|before|, |after_ref|)) + 0.01 lr`` (the exact float64
  AdamW formula is within 5.4 ulp of the stored values); summaries: ``delta_l2`` ``rtol 1e-3``,
  ``delta_proj`` within ``0.02 x delta_l2``; ``delta_dot_param`` within ``0.25 lr wd_max sum(p^2)``
  (a missing or extra decay moves it by the whole term ``lr wd sum(p^2)``).
"""

from __future__ import annotations

import numpy as np

from ov2seg_jax.losses.federated import load_lvis_fed_weights
from ov2seg_jax.parity.paths import metadata_dir
from ov2seg_jax.parity.report import Row, Tolerance, compare, compare_exact
from ov2seg_jax.parity.tolerances import FEATURES, LOGITS, MASK_LOGITS
from ov2seg_jax.parity.train_step_fixture import (
    StepResult,
    TrainStepCase,
    load_train_step_case,
    run_step,
)

LOSS = Tolerance(atol=1e-5, rtol=1e-5)
NORM = Tolerance(atol=0.0, rtol=5e-5)
GRAD_REL = 1e-4  # x max|g_ref|
GRAD_L2_RTOL, GRAD_PROJ, GRAD_SUM = 1e-4, 1e-4, 3e-4
AFTER_ULPS, AFTER_LR = 8, 0.01
DELTA_L2_RTOL, DELTA_PROJ = 1e-3, 0.02
DECAY_FRACTION = 0.25


def _row(name: str, worst: float, scale: float, criterion: str, passed: bool, note="") -> Row:
    return Row(name, worst, worst / scale if scale > 0 else worst, criterion, passed, note)


def _input_rows(case: TrainStepCase) -> list[Row]:
    from ov2seg_jax.train.step import normalize_images

    rows = [
        Row(
            "weights: conversion",
            0.0,
            0.0,
            "all keys accounted",
            case.converted.report.ok,
            f"{case.converted.report.converted} tensors",
        )
    ]
    for key, ok, note in case.derived_ok:
        rows.append(Row(f"weights: {key}", 0.0, 0.0, "sha256", ok, note))
    if "images_normalized_padded" in case.store:
        ours = np.transpose(np.asarray(normalize_images(case.batch["image"])), (0, 3, 1, 2))
        rows.append(
            compare(
                "inputs: normalised images", ours, case.store["images_normalized_padded"], FEATURES
            )
        )
    freq = case.meta["weights"].get("derived", [])
    ref_sum = next((e.get("sum") for e in freq if e.get("rule") == "lvis_freq_weight"), None)
    path = f"{metadata_dir()}/lvis_v1_train_cat_info.json"
    if ref_sum is not None:
        ours = float(np.sum(load_lvis_fed_weights(path), dtype=np.float64))
        rows.append(compare("federated class weights (sum)", ours, ref_sum, Tolerance(1e-3, 1e-6)))
    return rows


def _forward_rows(case: TrainStepCase, r: StepResult) -> list[Row]:
    rows = []
    for key in sorted(r.predictions):
        if key in case.store:
            tol = MASK_LOGITS if key.endswith("masks") else LOGITS
            rows.append(compare(f"train-mode {key}", r.predictions[key], case.store[key], tol))
    for key in sorted(k for k in case.store if k.startswith("match")):
        ours = r.matches.get(key)
        if ours is None:
            rows.append(Row(key, np.nan, np.nan, "exact", False, "we have no such layer/image"))
        else:
            rows.append(compare_exact(key, ours.astype(np.int64), case.store[key].astype(np.int64)))
    for name in case.meta["loss_order"]:
        ref = case.store.get(f"loss/{name}")
        if ref is None or name not in r.losses:
            rows.append(Row(f"loss/{name}", np.nan, np.nan, LOSS.describe(), False, "missing"))
        else:
            rows.append(compare(f"loss/{name}", r.losses[name], float(ref), LOSS))
    rows.append(compare("total loss", r.total, float(case.store["total_loss"]), LOSS))
    rows.append(
        compare(
            "global grad norm", r.grad_norm, float(case.store["grad_global_norm_preclip"]), NORM
        )
    )
    rows.append(compare("clip coefficient", r.clip_coef, float(case.store["clip_coef"]), NORM))
    rows.append(Row("step finite", 0.0, 0.0, "finite", r.finite))
    return rows


def _projection(k: int, x: np.ndarray) -> float:
    rand = np.random.default_rng([20240, k]).standard_normal(x.size)
    return float(np.dot(rand, x.astype(np.float64).ravel()))


def _grad_row(k: int, name: str, ours: np.ndarray, store: dict) -> Row:
    idx = store["sample_index"][k]
    scale = float(store["grad_absmax"][k])
    samples = np.abs(ours.ravel()[idx].astype(np.float64) - store["sample_grad"][k])
    worst_sample = float(samples.max())
    full = store.get(f"grad/{name}")
    if full is not None:
        d = float(np.max(np.abs(ours.astype(np.float64) - full)))
        worst = max(d, worst_sample)
        return _row(
            f"grad {name}", worst, scale, f"<= {GRAD_REL:g} x max|g|", worst <= GRAD_REL * scale
        )
    l2 = float(store["grad_l2"][k])
    d_l2 = abs(float(np.linalg.norm(ours.astype(np.float64))) - l2)
    d_proj = abs(_projection(k, ours) - float(store["grad_proj"][k]))
    d_sum = abs(float(np.sum(ours, dtype=np.float64)) - float(store["grad_sum"][k]))
    passed = (
        d_l2 <= GRAD_L2_RTOL * l2
        and d_proj <= GRAD_PROJ * l2
        and d_sum <= GRAD_SUM * l2
        and worst_sample <= GRAD_REL * scale
    )
    note = f"summaries: l2 {d_l2 / l2:.1e}, proj {d_proj / l2:.1e}, sum {d_sum / l2:.1e} x l2"
    return _row(
        f"grad {name}",
        max(d_l2, d_proj, d_sum),
        l2,
        "summaries (l2/proj/sum) + samples",
        passed,
        note,
    )


def _after_tolerance(before: np.ndarray, ref_after: np.ndarray, lr: float) -> np.ndarray:
    big = np.maximum(np.abs(before), np.abs(ref_after)).astype(np.float32)
    return AFTER_ULPS * np.spacing(big).astype(np.float64) + AFTER_LR * lr


def _update_row(k: int, name: str, r: StepResult, store: dict, lr_ref: float, wd_max: float) -> Row:
    before = r.before[name].astype(np.float64)
    after = r.after[name].astype(np.float64)
    delta = after - before
    idx = store["sample_index"][k]
    flat_b, flat_a = before.ravel(), after.ravel()
    s_tol = _after_tolerance(flat_b[idx], store["sample_after"][k], lr_ref)
    s_err = np.abs(flat_a[idx] - store["sample_after"][k])
    decay_scale = lr_ref * wd_max * float(np.sum(before * before))
    d_dot = abs(float(np.sum(before * delta)) - float(store["delta_dot_param"][k]))
    decay_ok = d_dot <= DECAY_FRACTION * decay_scale
    notes = [f"delta.p off by {d_dot / decay_scale:.2g} of the decay term" if decay_scale else ""]
    full = store.get(f"after/{name}")
    if full is not None:
        tol = _after_tolerance(before, full, lr_ref)
        err = np.abs(after - full)
        worst = float(max(err.max(), s_err.max()))
        passed = bool(np.all(err <= tol)) and bool(np.all(s_err <= s_tol)) and decay_ok
        crit = f"{AFTER_ULPS} ulp + {AFTER_LR:g} lr; delta.p"
    else:
        l2 = float(store["delta_l2"][k])
        d_l2 = abs(float(np.linalg.norm(delta)) - l2)
        d_proj = abs(_projection(k, delta) - float(store["delta_proj"][k]))
        worst = float(max(s_err.max(), d_l2))
        passed = (
            d_l2 <= DELTA_L2_RTOL * l2
            and d_proj <= DELTA_PROJ * l2
            and bool(np.all(s_err <= s_tol))
            and decay_ok
        )
        crit = "delta l2/proj, samples; delta.p"
        notes.append(f"delta l2 {d_l2 / l2:.1e}, proj {d_proj / l2:.1e} x l2")
    scale = float(store["delta_absmax"][k])
    return _row(f"after {name}", worst, scale, crit, passed, "; ".join(n for n in notes if n))


def _parameter_rows(case: TrainStepCase, r: StepResult) -> list[Row]:
    store = case.store
    params = case.meta["parameters"]
    names = [p["name"] for p in params]
    rows = []
    missing = [n for n in names if n not in r.grads]
    extra = sorted(set(r.grads) - set(names))
    rows.append(
        Row(
            "trained parameters (same set)",
            float(len(missing) + len(extra)),
            0.0,
            "exact",
            not missing and not extra,
            f"{len(names)} recorded"
            + (f"; we lack {missing[:3]}" if missing else "")
            + (f"; we also train {extra[:3]}" if extra else ""),
        )
    )
    present = [n for n in names if n in r.grads]
    for what, ours, ref in (
        ("lr", r.lr, store["lr"]),
        ("weight decay", r.weight_decay, store["weight_decay"]),
    ):
        ref_of = dict(zip(names, ref, strict=True))
        wrong = [n for n in present if np.float32(ours[n]) != np.float32(ref_of[n])]
        rows.append(
            Row(
                f"{what} of every parameter",
                float(len(wrong)),
                len(wrong) / max(len(present), 1),
                "exact (float32)",
                not wrong,
                f"{len(wrong)} of {len(present)} differ"
                + (
                    f", e.g. {wrong[0]}: ours {ours[wrong[0]]:g}, original "
                    f"{float(ref_of[wrong[0]]):g}"
                    if wrong
                    else ""
                ),
            )
        )
    wd_max = float(np.max(store["weight_decay"]))
    for k, name in enumerate(names):
        if name not in r.grads:
            continue
        rows.append(_grad_row(k, name, r.grads[name], store))
        rows.append(_update_row(k, name, r, store, float(store["lr"][k]), wd_max))
    return rows


def check_train_step_case(case: TrainStepCase, result: StepResult | None = None) -> list[Row]:
    """Every row: weights, inputs, predictions, matches, losses, norm, clip, per-parameter
    gradients, lr, weight decay and after-step values."""
    r = result if result is not None else run_step(case)
    return _input_rows(case) + _forward_rows(case, r) + _parameter_rows(case, r)


def check_train_step_dir(fixture_dir: str, **kwargs) -> list[Row]:
    """All parity rows of a ``train_step/``-layout folder (kwargs: :func:`load_train_step_case`)."""
    return check_train_step_case(load_train_step_case(fixture_dir, **kwargs))


def dtype_gap_rows(ref: StepResult, other: StepResult, label: str) -> list[Row]:
    """Measurements (always passing) of how far ``other`` (e.g. a bfloat16 step) is from ``ref``:
    loss, global norm, and per tensor the relative L2 gap of gradients and updates."""

    def rel(a: dict, b: dict) -> tuple[float, float, str]:
        worst, name, num, den = 0.0, "", 0.0, 0.0
        for k in a:
            x, y = a[k].astype(np.float64), b[k].astype(np.float64)
            n = float(np.linalg.norm(y - x))
            d = float(np.linalg.norm(x))
            num, den = num + n * n, den + d * d
            if d > 0 and n / d > worst:
                worst, name = n / d, k
        return float(np.sqrt(num / den)), worst, name

    upd_ref = {k: ref.after[k] - ref.before[k] for k in ref.after}
    upd = {k: other.after[k] - other.before[k] for k in other.after}
    g_all, g_worst, g_name = rel(ref.grads, other.grads)
    u_all, u_worst, u_name = rel(upd_ref, upd)
    sign = np.mean(
        np.concatenate([np.sign(upd[k]).ravel() == np.sign(upd_ref[k]).ravel() for k in upd_ref])
    )
    m = "measured"
    return [
        _row(f"{label}: total loss", abs(other.total - ref.total), abs(ref.total), m, True),
        _row(
            f"{label}: global grad norm",
            abs(other.grad_norm - ref.grad_norm),
            ref.grad_norm,
            m,
            True,
        ),
        Row(
            f"{label}: gradients, all (rel L2)",
            g_all,
            g_all,
            m,
            True,
            f"worst tensor {g_worst:.3g} ({g_name})",
        ),
        Row(
            f"{label}: updates, all (rel L2)",
            u_all,
            u_all,
            m,
            True,
            f"worst tensor {u_worst:.3g} ({u_name})",
        ),
        Row(
            f"{label}: update signs equal",
            1 - sign,
            1 - sign,
            m,
            True,
            f"{100 * sign:.2f} % of entries",
        ),
    ]


def check_with_bf16(fixture_dir: str, **kwargs) -> list[Row]:
    """The float32 rows plus the bfloat16-compute step measured against our float32 step."""
    case = load_train_step_case(fixture_dir, **kwargs)
    ref = run_step(case)
    bf16 = run_step(load_train_step_case(fixture_dir, compute_dtype="bfloat16", **kwargs))
    return check_train_step_case(case, ref) + dtype_gap_rows(ref, bf16, "bf16 vs f32")
