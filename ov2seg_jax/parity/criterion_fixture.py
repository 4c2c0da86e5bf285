"""Replay of the original's training loss on a ``criterion/``-layout fixture folder.

The folder holds ``criterion.npz`` (targets, the predictions of the final layer ``final_*`` and of
the aux layers ``aux{i}_*``, every random draw ``draw{NN}_*``, the matched indices
``match{l}_b{b}_pred/_tgt`` and the unweighted terms ``loss/<name>``) and ``criterion.json`` (the
loss settings, the weight dictionary and the order and origin of the draws). Everything is read
from the files: batch size, number of layers, classes, points.

The recorded draws are turned into :class:`~ov2seg_jax.losses.criterion.LayerDraws`:

* the matcher's one ``(1, P, 2)`` draw per image become ``matcher_points`` (B, P, 2);
* the federated category list (the occurring classes, sorted, then the drawn ones) becomes
  priorities that are finite exactly on the listed categories, so our draw picks the same ones
  provided we find the same occurring classes (checked in its own row);
* the ``(n_matched, 3P, 2)`` candidates and ``(n_matched, P - K, 2)`` uniform points are spread
  over our slots: image ``b`` fills its first ``min(Q, n_b)`` slots, in query order, which is the
  order in which the original concatenates its matched pairs.

The targets are padded with ``extra_padding`` more entries than the largest image needs (a full
mask with label 0, marked invalid), so the replay also shows that padding changes nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from configs import ov2seg_r50_lvis
from ov2seg_jax.losses.config import CriterionConfig
from ov2seg_jax.losses.criterion import (
    LOSS_NAMES,
    Targets,
    layer_heads,
    loss_suffix,
    losses_from_draws,
    normalised_num_masks,
    weight_dict,
)
from ov2seg_jax.losses.draws import LayerDraws
from ov2seg_jax.losses.federated import fed_category_mask
from ov2seg_jax.losses.matcher import Matches, matched_query_classes
from ov2seg_jax.models.outputs import HeadOutputs, ModelOutputs
from ov2seg_jax.parity.report import Row, Tolerance, compare, compare_exact

# The terms are float32 sums of a few thousand elements (loss_ce: B*Q*C ~ 2e4) of magnitude <= 10;
# float32 reorderings move them by ~1e-6 relative. A wrong detail (a missing factor, a wrong
# normaliser, one point chosen differently out of 112) moves them by 1e-3 relative or more.
LOSS_TOLERANCE = Tolerance(atol=1e-5, rtol=1e-5)

_CONFIG_FIELDS = {
    "class_weight": float,
    "object_weight": float,
    "mask_weight": float,
    "dice_weight": float,
    "num_points": int,
    "oversample_ratio": float,
    "importance_sample_ratio": float,
}


class CriterionCase(NamedTuple):
    """One fixture, in our layout, with the original's answers.

    ``ref_matches[l][b]`` = (pred, tgt) int64 arrays; ``ref_fed[l]`` the recorded category list of
    layer ``l`` (or ``None`` when the loss was not federated); ``ref_losses`` name -> value;
    ``ref_weight_dict`` as recorded.
    """

    outputs: ModelOutputs
    targets: Targets
    draws: tuple[LayerDraws, ...]
    config: CriterionConfig
    ref_matches: list[list[tuple[np.ndarray, np.ndarray]]]
    ref_fed: list[np.ndarray | None]
    ref_losses: dict[str, float]
    ref_weight_dict: dict[str, float]


def _require(store: Mapping[str, np.ndarray], key: str, where: str) -> np.ndarray:
    if key not in store:
        raise ValueError(f"{where} lacks '{key}'")
    return np.asarray(store[key])


def _layer_prefixes(keys: set[str]) -> list[str]:
    """``final_`` then ``aux0_``, ``aux1_``, ... as long as they are contiguous."""
    if "final_pred_logits" not in keys:
        raise ValueError("criterion.npz lacks 'final_pred_logits'")
    aux = sorted(int(m.group(1)) for k in keys if (m := re.fullmatch(r"aux(\d+)_pred_logits", k)))
    if aux != list(range(len(aux))):
        raise ValueError(f"criterion.npz aux layers are not numbered 0..{len(aux) - 1}: {aux}")
    return ["final_"] + [f"aux{i}_" for i in aux]


def _read_config(meta: Mapping) -> CriterionConfig:
    if not isinstance(meta, dict):
        raise ValueError("criterion.json must hold an object")
    cfg = meta.get("config")
    if not isinstance(cfg, dict):
        raise ValueError("criterion.json lacks the 'config' object")
    kwargs = {}
    for name, kind in _CONFIG_FIELDS.items():
        if name not in cfg:
            raise ValueError(f"criterion.json config lacks '{name}'")
        try:
            kwargs[name] = kind(cfg[name])
        except (TypeError, ValueError):
            raise ValueError(
                f"criterion.json config '{name}' is not a number: {cfg[name]!r}"
            ) from None
    # The fields the fixture does not record are the original's LVIS training settings.
    lvis = ov2seg_r50_lvis.get_config().loss
    for optional in ("num_fed_classes", "class_loss_factor", "object_empty_weight"):
        if optional in cfg:
            kwargs[optional] = type(lvis[optional])(cfg[optional])
    return CriterionConfig.from_config(lvis, **kwargs)


def read_targets(
    store, b: int, extra_padding: int, where: str = "criterion.npz"
) -> tuple[Targets, list[int]]:
    """``target{i}_labels`` / ``target{i}_masks`` padded to the largest image plus
    ``extra_padding`` invalid entries; returns the targets and the real counts."""
    labels, masks = [], []
    for i in range(b):
        lab = _require(store, f"target{i}_labels", where).astype(np.int64)
        msk = _require(store, f"target{i}_masks", where)
        if lab.ndim != 1 or msk.ndim != 3 or msk.shape[0] != lab.shape[0]:
            raise ValueError(
                f"{where} target{i}: labels {lab.shape} and masks {msk.shape} do not pair up"
            )
        labels.append(lab)
        masks.append(msk.astype(bool))
    hw = {m.shape[1:] for m in masks}
    if len(hw) != 1:
        raise ValueError(f"{where} target masks differ in size: {sorted(hw)}")
    (h, w), counts = hw.pop(), [len(x) for x in labels]
    n = max(counts) + extra_padding
    lab_p = np.zeros((b, n), np.int32)
    msk_p = np.ones((b, n, h, w), bool)  # padding: full masks, never to be used
    valid = np.zeros((b, n), bool)
    for i in range(b):
        lab_p[i, : counts[i]] = labels[i]
        msk_p[i, : counts[i]] = masks[i]
        valid[i, : counts[i]] = True
    return Targets(lab_p, msk_p, valid), counts


def _read_draws(store, meta, config, b, q, n, counts) -> tuple[list[LayerDraws], list]:
    """Group the recorded draws by layer (see the module notes) and lay them out as ours."""
    order = meta.get("draw_order")
    if not isinstance(order, list):
        raise ValueError("criterion.json lacks the 'draw_order' list")
    arrays = []
    for i, entry in enumerate(order):
        key = f"draw{int(entry.get('index', i)):02d}_{entry.get('kind')}"
        arrays.append((entry.get("kind"), key, _require(store, key, "criterion.npz")))
    num_layers = len(_layer_prefixes(set(store.keys())))
    c = np.asarray(store["final_pred_logits"]).shape[-1] - 1
    return layer_draws_from_records(arrays, num_layers, c, config, b, q, n, counts)


def layer_draws_from_records(
    arrays: list[tuple[str, str, np.ndarray]],
    num_layers: int,
    c: int,
    config: CriterionConfig,
    b: int,
    q: int,
    n: int,
    counts: list[int],
) -> tuple[list[LayerDraws], list]:
    """The original's draws ``(kind, key, array)`` in call order -> one :class:`LayerDraws` per
    layer (targets padded to ``n`` slots, ``counts`` real targets per image) and the recorded
    federated category lists."""
    p, s, k = config.num_points, config.num_candidates, config.num_important
    matched = [min(q, c) for c in counts]
    total = sum(matched)
    pos = 0

    def take(kind: str, shape: tuple[int, ...] | None, what: str) -> np.ndarray:
        nonlocal pos
        if pos >= len(arrays):
            raise ValueError(f"criterion draws end before the {what}")
        got_kind, key, arr = arrays[pos]
        if got_kind != kind or (shape is not None and arr.shape != shape):
            raise ValueError(f"{key} {arr.shape} is not the expected {what} ({kind} {shape})")
        pos += 1
        return arr

    def spread(rows: np.ndarray) -> np.ndarray:
        out = np.zeros((b, n, *rows.shape[1:]), np.float32)
        start = 0
        for i, m in enumerate(matched):
            out[i, :m] = rows[start : start + m]
            start += m
        return out

    layers, feds = [], []
    for layer in range(num_layers):
        pts = [take("rand", (1, p, 2), f"layer {layer} matcher points")[0] for _ in range(b)]
        fed = None
        if pos < len(arrays) and arrays[pos][0] == "fed_loss_categories":
            fed = take("fed_loss_categories", None, f"layer {layer} federated categories")
            fed = fed.astype(np.int64).reshape(-1)
            if fed.size and (fed.min() < 0 or fed.max() > c):
                raise ValueError(f"layer {layer} federated categories outside [0, {c}]")
        if (fed is not None) != config.federated:
            raise ValueError(f"layer {layer}: federated draw presence disagrees with the config")
        cand = take("rand", (total, s, 2), f"layer {layer} candidate points")
        rand = (
            take("rand", (total, p - k, 2), f"layer {layer} uniform points")
            if p - k > 0
            else np.zeros((total, 0, 2), np.float32)
        )
        priorities = np.full((c,), -np.inf, np.float32)
        if fed is not None:
            listed = fed[fed < c]
            priorities[listed] = 0.0
        layers.append(
            LayerDraws(
                np.stack(pts).astype(np.float32),
                priorities if fed is not None else np.zeros((0,), np.float32),
                spread(cand),
                spread(rand),
            )
        )
        feds.append(fed)
    if pos != len(arrays):
        raise ValueError(f"criterion draws: {len(arrays) - pos} draw(s) left over after the layers")
    return layers, feds


def load_criterion_case(fixture_dir: str, extra_padding: int = 1) -> CriterionCase:
    """Read a ``criterion/``-layout folder; raises ``FileNotFoundError``/``ValueError`` with the
    reason when it cannot be used."""
    if extra_padding < 0:
        raise ValueError(f"extra_padding must be >= 0, got {extra_padding}")
    if not os.path.isdir(fixture_dir):
        raise FileNotFoundError(f"fixture directory not found: {fixture_dir}")
    npz_path = os.path.join(fixture_dir, "criterion.npz")
    json_path = os.path.join(fixture_dir, "criterion.json")
    for path in (npz_path, json_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found (not a criterion fixture directory)")
    try:
        with open(json_path) as f:
            meta = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{json_path}: not valid JSON ({e})") from None
    try:
        with np.load(npz_path) as z:
            store = {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{npz_path}: cannot be read ({e})") from None

    config = _read_config(meta)
    heads = []
    for prefix in _layer_prefixes(set(store)):
        arrays = [
            _require(store, prefix + name, "criterion.npz").astype(np.float32)
            for name in ("pred_logits", "pred_object_logits", "pred_masks")
        ]
        heads.append(HeadOutputs(*arrays))
    b, q, _ = heads[0].pred_logits.shape
    order = meta.get("draw_order") if isinstance(meta, dict) else None
    if not isinstance(order, list) or not all(isinstance(e, dict) for e in order):
        raise ValueError("criterion.json lacks the 'draw_order' list of draws")
    fed_is_recorded = any(e.get("kind") == "fed_loss_categories" for e in order)
    config = dataclasses.replace(config, federated=fed_is_recorded)
    targets, counts = read_targets(store, b, extra_padding)
    n = targets.labels.shape[1]
    draws, feds = _read_draws(store, meta, config, b, q, n, counts)

    ref_matches = []
    for layer in range(len(heads)):
        per_image = []
        for i in range(b):
            pred = _require(store, f"match{layer}_b{i}_pred", "criterion.npz").astype(np.int64)
            tgt = _require(store, f"match{layer}_b{i}_tgt", "criterion.npz").astype(np.int64)
            per_image.append((pred, tgt))
        ref_matches.append(per_image)
    ref_losses = {k[len("loss/") :]: float(v) for k, v in store.items() if k.startswith("loss/")}
    if not ref_losses:
        raise ValueError("criterion.npz has no 'loss/<name>' entries")
    ref_weights = meta.get("weight_dict")
    if not isinstance(ref_weights, dict):
        raise ValueError("criterion.json lacks the 'weight_dict' object")
    outputs = ModelOutputs(
        heads[0].pred_logits,
        heads[0].pred_object_logits,
        heads[0].pred_masks,
        np.zeros((b, q, 0), np.float32),
        tuple(heads[1:]),
    )
    return CriterionCase(
        outputs, targets, tuple(draws), config, ref_matches, feds, ref_losses, ref_weights
    )


@functools.partial(jax.jit, static_argnames="config")
def _run_layer(head: HeadOutputs, targets: Targets, draws: LayerDraws, num_masks, config):
    """One layer through the public entry point (compiled once per shape, shared by layers)."""
    outputs = ModelOutputs(
        head.pred_logits, head.pred_object_logits, head.pred_masks, head.pred_logits[..., :0]
    )
    losses, (matches,) = losses_from_draws(outputs, targets, [draws], config, num_masks=num_masks)
    c = head.pred_logits.shape[-1] - 1
    classes = matched_query_classes(matches, targets.labels, head.pred_logits.shape[1], c)
    occurring = jnp.zeros((c + 1,), bool).at[classes.reshape(-1)].set(True)
    categories = (
        fed_category_mask(classes, draws.fed_priorities, config.num_fed_classes)
        if config.federated
        else None
    )
    return losses, matches, occurring, categories


def _run(case: CriterionCase):
    """Every layer of ``case``: terms with their layer suffix, matches, occurring classes and
    federated categories per layer. The mask divisor is the batch's, as for the whole model."""
    num_masks = normalised_num_masks(jnp.asarray(case.targets.valid))
    heads = layer_heads(case.outputs)
    losses, matches, occurring, categories = {}, [], [], []
    for layer, (head, draws) in enumerate(zip(heads, case.draws, strict=True)):
        terms, m, occ, cat = _run_layer(head, case.targets, draws, num_masks, case.config)
        losses.update({k + loss_suffix(layer): v for k, v in terms.items()})
        matches.append(m)
        occurring.append(occ)
        categories.append(cat)
    return losses, matches, occurring, categories


def _match_rows(layer: int, matches: Matches, ref) -> list[Row]:
    rows = []
    valid = np.asarray(matches.valid)
    for i, (ref_pred, ref_tgt) in enumerate(ref):
        ours_pred = np.asarray(matches.pred_index)[i][valid[i]].astype(np.int64)
        ours_tgt = np.asarray(matches.target_index)[i][valid[i]].astype(np.int64)
        ours = np.concatenate([ours_pred, ours_tgt])
        theirs = np.concatenate([ref_pred, ref_tgt])
        note = ""
        if ours.shape == theirs.shape and not np.array_equal(ours, theirs):
            cost = np.asarray(matches.cost, np.float64)[i]
            note = (
                f"total cost ours {cost[ours_pred, ours_tgt].sum():.6f}, "
                f"the original's pairs on our costs {cost[ref_pred, ref_tgt].sum():.6f}"
            )
        rows.append(
            compare_exact(f"layer{layer} image{i} matched (query, target)", ours, theirs, note)
        )
    return rows


def check_criterion_case(case: CriterionCase) -> list[Row]:
    """Rows: weight dictionary, matches, federated categories and every loss term."""
    num_aux = len(case.outputs.aux_outputs)
    ours_w = weight_dict(case.config, num_aux)
    same_names = sorted(ours_w) == sorted(case.ref_weight_dict)
    rows = [
        compare_exact(
            "weight_dict",
            [ours_w.get(k, np.nan) for k in case.ref_weight_dict] if same_names else [],
            list(case.ref_weight_dict.values()) if same_names else [0],
            "" if same_names else f"names {sorted(ours_w)} != {sorted(case.ref_weight_dict)}",
        )
    ]
    if len(case.draws) != len(layer_heads(case.outputs)):
        raise ValueError(
            f"{len(case.draws)} layers of draws for {len(layer_heads(case.outputs))} layers"
        )
    losses, matches, occurring, categories = _run(case)
    for layer, m in enumerate(matches):
        rows += _match_rows(layer, m, case.ref_matches[layer])
        fed = case.ref_fed[layer]
        if fed is not None:
            ours_occ = np.flatnonzero(np.asarray(occurring[layer]))
            rows.append(
                compare_exact(
                    f"layer{layer} occurring classes", ours_occ, np.sort(fed[: ours_occ.size])
                )
            )
            c = case.outputs.pred_logits.shape[-1] - 1
            ours_set = np.flatnonzero(np.asarray(categories[layer]))
            rows.append(
                compare_exact(
                    f"layer{layer} federated categories", ours_set, np.unique(fed[fed < c])
                )
            )
    expected = [n + loss_suffix(layer) for layer in range(num_aux + 1) for n in LOSS_NAMES]
    if sorted(expected) != sorted(case.ref_losses):
        rows.append(
            Row(
                "loss names",
                float("nan"),
                float("nan"),
                "same names",
                False,
                f"ours {sorted(expected)} != recorded {sorted(case.ref_losses)}",
            )
        )
    for name in expected:
        if name in case.ref_losses:
            rows.append(
                compare(
                    f"loss/{name}", np.asarray(losses[name]), case.ref_losses[name], LOSS_TOLERANCE
                )
            )
    return rows


def check_criterion_dir(fixture_dir: str, extra_padding: int = 1) -> list[Row]:
    """All parity rows of a ``criterion/``-layout folder."""
    return check_criterion_case(load_criterion_case(fixture_dir, extra_padding))
