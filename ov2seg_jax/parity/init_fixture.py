"""A fresh ``init`` of our model against the original's freshly built model (``init/`` layout).

The folder holds ``init_stats.json`` (per state-dict entry: the initialiser the original applies
last, its arguments, the statistics of the result and, for random tensors, the theory: the
distribution, its std, the standard error of the mean and the bound) and ``init_exact.npz`` (the
values of every deterministic tensor). The architecture is read off the recorded shapes, our model
is initialised from ``seed``, its variables are put in the original's layout (the inverse of the
conversion table) and every entry becomes a row:

* deterministic tensors: bit-for-bit (``np.array_equal``); the deformable-attention direction grid
  to 1e-7 (its cos/sin may round differently);
* random tensors, by distribution: ``|mean| <= 5 x mean_stderr``, ``|std / theory_std - 1|`` within
  the recorded ``std_ratio_tol`` (6 sqrt(0.4/n) or 6 sqrt(0.5/n), + 1e-3), ``max|x| <= bound`` (+1
  float32 ulp) for uniform draws, and for tensors large enough to tell (n > 2,000) the excess
  kurtosis of the declared law (uniform -1.2, normal 0) within 5 sqrt(24 / n);
* the recorded relations (the encoder layers' identical FFN biases).

Entries that are not variables here say why (the text classifier is an input of the model, the
criterion's buffers are rebuilt by the trainer, the batch-norm step counter does not exist).
"""

from __future__ import annotations

import json
import math
import os
import re

import jax
import jax.numpy as jnp
import numpy as np

from ov2seg_jax.convert.converter import flatten_paths
from ov2seg_jax.convert.infer_config import infer_model_config
from ov2seg_jax.convert.ov2seg_rules import ov2seg_rules
from ov2seg_jax.models.ov2seg import build_model
from ov2seg_jax.models.preprocess import PIXEL_MEAN, PIXEL_STD
from ov2seg_jax.parity.report import Row
from ov2seg_jax.parity.train_step_fixture import to_source_layout

MEAN_Z = 5.0
KURTOSIS = {"uniform": -1.2, "normal": 0.0}
KURTOSIS_MIN_N = 2000
GRID_ATOL = 1e-7

_NOT_VARIABLES = (
    (r".*\.num_batches_tracked$", "batch-norm step counter: not kept (frozen norms)"),
    (r".*class_embed\.zs_weight$", "text classifier: an input of the model, not a variable"),
    (r"^criterion\.", "criterion buffer: rebuilt from the config and metadata by the trainer"),
)


def load_init_fixture(fixture_dir: str) -> tuple[list[dict], dict[str, np.ndarray]]:
    """``(entries, exact values)``; raises ``FileNotFoundError``/``ValueError`` when unusable."""
    if not os.path.isdir(fixture_dir):
        raise FileNotFoundError(f"fixture directory not found: {fixture_dir}")
    stats = os.path.join(fixture_dir, "init_stats.json")
    exact = os.path.join(fixture_dir, "init_exact.npz")
    for path in (stats, exact):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found (not an init fixture directory)")
    try:
        with open(stats) as f:
            meta = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{stats}: not valid JSON ({e})") from None
    entries = meta.get("entries") if isinstance(meta, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{stats} lacks the 'entries' list")
    for i, e in enumerate(entries):
        for key in ("name", "shape", "init", "exact"):
            if key not in e:
                raise ValueError(f"{stats}: entry {i} lacks '{key}'")
    try:
        with np.load(exact) as z:
            values = {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{exact}: cannot be read ({e})") from None
    return entries, values


def fresh_variables(entries: list[dict], seed: int = 0) -> tuple[dict[str, np.ndarray], object]:
    """Our freshly initialised variables of the recorded architecture, keyed by state-dict name."""
    shapes = {e["name"]: np.zeros(e["shape"], np.float32) for e in entries}
    model_cfg = infer_model_config(shapes)
    model = build_model(model_cfg)
    images = jnp.zeros((1, 64, 64, 3), jnp.float32)
    text = jnp.zeros((2, model_cfg.decoder.text_embed_dim), jnp.float32)
    variables = jax.jit(model.init)(jax.random.key(seed), images, text)
    flat = {k: np.asarray(v) for k, v in flatten_paths(jax.device_get(variables)).items()}
    return to_source_layout(flat, ov2seg_rules(model_cfg)), model_cfg


def _random_row(e: dict, x: np.ndarray) -> Row:
    theory = e.get("theory") or {}
    dist = theory.get("distribution")
    x = x.astype(np.float64).ravel()
    n = x.size
    mean, std = float(x.mean()), float(x.std())
    z = abs(mean) / theory["mean_stderr"]
    ratio = std / theory["std"]
    law = 0.4 if dist == "uniform" else 0.5
    tol = (e.get("check") or {}).get("std_ratio_tol", 6 * math.sqrt(law / n) + 1e-3)
    failures = []
    if z > MEAN_Z:
        failures.append(f"mean {mean:.3g} is {z:.1f} stderr from 0")
    if abs(ratio - 1) > tol:
        failures.append(f"std ratio {ratio:.4f} outside 1 ± {tol:.3g}")
    bound = theory.get("bound_float32_allowed", theory.get("bound"))
    if dist == "uniform" and bound is not None and np.abs(x).max() > bound:
        failures.append(f"max |x| {np.abs(x).max():.6g} > bound {bound:.6g}")
    note = f"{e['init']}: mean {z:.1f} stderr, std x{ratio:.4f}"
    if n > KURTOSIS_MIN_N and dist in KURTOSIS and std > 0:
        kurt = float(np.mean(((x - mean) / std) ** 4) - 3)
        if abs(kurt - KURTOSIS[dist]) > 5 * math.sqrt(24 / n):
            failures.append(f"excess kurtosis {kurt:.2f}, {dist} has {KURTOSIS[dist]}")
        note += f", kurtosis {kurt:.2f}"
    return Row(
        e["name"],
        abs(ratio - 1),
        z,
        f"{dist}: mean, std, bound, shape",
        not failures,
        "; ".join(failures) or note,
    )


def _exact_row(e: dict, ours: np.ndarray, ref: np.ndarray) -> Row:
    if ours.shape != ref.shape:
        return Row(e["name"], np.nan, np.nan, "exact", False, f"shape {ours.shape} != {ref.shape}")
    diff = float(np.max(np.abs(ours.astype(np.float64) - ref))) if ref.size else 0.0
    if e["init"] == "msda_direction_grid":
        return Row(e["name"], diff, diff, f"atol {GRID_ATOL:g}", diff <= GRID_ATOL, e["init"])
    return Row(e["name"], diff, diff, "bit-for-bit", bool(np.array_equal(ours, ref)), e["init"])


def check_init_entries(
    entries: list[dict], exact: dict[str, np.ndarray], ours: dict[str, np.ndarray]
) -> list[Row]:
    rows = []
    constants = {"pixel_mean": np.float32(PIXEL_MEAN), "pixel_std": np.float32(PIXEL_STD)}
    for e in entries:
        name = e["name"]
        if name in constants:
            rows.append(_exact_row(e, constants[name], exact[name].reshape(-1)))
            continue
        if name not in ours:
            reason = next((r for p, r in _NOT_VARIABLES if re.match(p, name)), None)
            rows.append(
                Row(name, 0.0, 0.0, "not a variable", reason is not None, reason or "missing here")
            )
            continue
        if e["exact"]:
            if name not in exact:
                raise ValueError(f"init_exact.npz lacks the exact entry '{name}'")
            rows.append(_exact_row(e, ours[name], exact[name]))
        else:
            rows.append(_random_row(e, ours[name]))
    recorded = {e["name"] for e in entries}
    extra = sorted(set(ours) - recorded)
    rows.append(
        Row(
            "variables without a recorded entry",
            float(len(extra)),
            0.0,
            "none",
            not extra,
            ", ".join(extra[:5]),
        )
    )
    return rows


def _relation_rows(meta_relations: list[dict], ours: dict[str, np.ndarray]) -> list[Row]:
    rows = []
    for rel in meta_relations:
        pattern = re.escape(rel["tensors"]).replace(r"\*", r"\d+")
        members = [ours[k] for k in sorted(ours) if re.fullmatch(pattern, k)]
        if len(members) < 2:
            continue
        same = all(np.array_equal(members[0], m) for m in members[1:])
        rows.append(
            Row(
                f"relation: {rel['tensors']}",
                0.0,
                0.0,
                "identical" if rel["identical_across_layers"] else "independent",
                same == bool(rel["identical_across_layers"]),
                rel.get("why", ""),
            )
        )
    return rows


def check_init_variables(fixture_dir: str, ours: dict[str, np.ndarray]) -> list[Row]:
    """Every row of an ``init/``-layout folder for given variables (state-dict names)."""
    entries, exact = load_init_fixture(fixture_dir)
    with open(os.path.join(fixture_dir, "init_stats.json")) as f:
        relations = json.load(f).get("relations", [])
    return check_init_entries(entries, exact, ours) + _relation_rows(relations, ours)


def check_init_dir(fixture_dir: str, seed: int = 0) -> list[Row]:
    """Every row of an ``init/``-layout folder for a fresh ``init`` from ``seed``."""
    entries, _ = load_init_fixture(fixture_dir)
    return check_init_variables(fixture_dir, fresh_variables(entries, seed)[0])
