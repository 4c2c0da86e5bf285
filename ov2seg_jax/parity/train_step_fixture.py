"""Replay of one training iteration of the original on a ``train_step/``-layout fixture folder.

The folder holds ``train_step.npz`` and ``train_step.json`` (inputs, every random draw in call
order, the train-mode predictions of each supervised layer, the loss terms, the gradients before
clipping, the clip norm, per-parameter lr and weight decay, the parameters after one AdamW step,
and summaries of every parameter; see the fixture README). The replay builds the step the way
``--mode train`` builds it, from the LVIS recipe's config:

* the weights go through the real converter: the small model's state dict (``*.pth`` in the
  folder, else the sibling ``ov2seg_small/`` folder's checkpoint or manifest) with the derived
  buffers of ``train_step.json`` rebuilt from the metadata files and checked by sha256;
* the architecture is read off the state dict; the optimizer, its rules, the clipping and the
  schedule are ``configs/ov2seg_r50_lvis.py``'s; the criterion is the config's with the folder's
  ``num_points`` (the recorded run lowered it);
* ``make_optimizer`` + ``make_train_step`` run one step whose loss replays the recorded draws
  (:func:`~ov2seg_jax.parity.criterion_fixture.layer_draws_from_records`).

Everything is compared in the original's layout (the inverse of the conversion table), keyed by
state-dict name; :mod:`ov2seg_jax.parity.train_step_rows` makes the table.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from ov2seg_jax.convert.convert_ov2seg import ConvertedModel, convert_state_dict
from ov2seg_jax.convert.infer_config import infer_model_config
from ov2seg_jax.convert.ov2seg_rules import ov2seg_rules
from ov2seg_jax.convert.rules import Rule
from ov2seg_jax.losses.criterion import Targets, losses_from_draws, weight_dict
from ov2seg_jax.losses.draws import LayerDraws
from ov2seg_jax.parity.criterion_fixture import layer_draws_from_records, read_targets
from ov2seg_jax.parity.manifest import ManifestError, _derived, _sha256
from ov2seg_jax.parity.model_fixture import load_fixture_state
from ov2seg_jax.parity.paths import metadata_dir

# What each derived-buffer rule reads when the fixture's json does not say (its README: the LVIS
# classifier and category file, the object-loss weights [1, 0.4]); sha256 confirms the choice.
_DERIVED_DEFAULTS = {
    "clip_text_classifier": {"source": "fg_bg_5_10_lvis_ens.npy"},
    "lvis_freq_weight": {"source": "lvis_v1_train_cat_info.json"},
    "values": {"values": [1.0, 0.4]},
}
WEIGHTS_FOLDER = "ov2seg_small"  # the recipe's weights, beside the train_step folder


@dataclasses.dataclass
class TrainStepCase:
    """One recorded step: our config and inputs, the replayed draws and the reference store."""

    fixture_dir: str
    config: ml_collections.ConfigDict
    converted: ConvertedModel
    batch: dict[str, np.ndarray]
    draws: tuple[LayerDraws, ...]
    counts: list[int]
    store: dict[str, np.ndarray]
    meta: dict
    derived_ok: list[tuple[str, bool, str]]  # (key, sha256 matches, note)


@dataclasses.dataclass
class StepResult:
    """Our step: float32 outputs, terms, pre-clip gradients and parameters before and after, in
    the original's layout (state-dict names), plus our per-parameter lr and weight decay."""

    losses: dict[str, float]
    total: float
    grad_norm: float
    clip_coef: float
    predictions: dict[str, np.ndarray]  # pred{l}_{logits,object_logits,masks}
    matches: dict[str, np.ndarray]  # match{l}_b{b}_{pred,tgt}
    grads: dict[str, np.ndarray]
    before: dict[str, np.ndarray]
    after: dict[str, np.ndarray]
    lr: dict[str, float]
    weight_decay: dict[str, float]
    finite: bool
    flat_grads: dict  # our pre-clip gradient tree (our layout)


def _load(fixture_dir: str) -> tuple[dict, dict]:
    if not os.path.isdir(fixture_dir):
        raise FileNotFoundError(f"fixture directory not found: {fixture_dir}")
    npz_path = os.path.join(fixture_dir, "train_step.npz")
    json_path = os.path.join(fixture_dir, "train_step.json")
    for path in (npz_path, json_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found (not a train_step fixture directory)")
    try:
        with open(json_path) as f:
            meta = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{json_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{json_path} must hold an object")
    for key in ("draw_order", "parameters", "loss_order", "weights", "config"):
        if key not in meta:
            raise ValueError(f"{json_path} lacks '{key}'")
    try:
        with np.load(npz_path) as z:
            store = {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{npz_path}: cannot be read ({e})") from None
    return store, meta


def _require(store: dict, key: str) -> np.ndarray:
    if key not in store:
        raise ValueError(f"train_step.npz lacks '{key}'")
    return store[key]


def weights_state_dict(fixture_dir: str, meta: dict, weights: str | None = None):
    """The recorded step's state dict and the check of each rebuilt derived buffer."""
    source = weights or fixture_dir
    if not any(f.endswith((".pth", ".pkl")) for f in os.listdir(source)):
        sibling = os.path.join(os.path.dirname(os.path.abspath(fixture_dir)), WEIGHTS_FOLDER)
        source = weights or sibling
    if not os.path.isdir(source):
        raise FileNotFoundError(
            f"no weights for {fixture_dir}: neither a .pth/.pkl in it nor the folder {source}"
        )
    state, _ = load_fixture_state(source)
    state = {k: np.asarray(v, np.float32) if v.dtype == np.float16 else v for k, v in state.items()}
    checks = []
    dirs = [fixture_dir, metadata_dir()]
    for entry in meta["weights"].get("derived", []):
        entry = {"dtype": "float32", **_DERIVED_DEFAULTS.get(entry.get("rule"), {}), **entry}
        try:
            arr = _derived(entry, dirs)
        except (ManifestError, KeyError) as e:
            raise ValueError(f"derived buffer {entry.get('key')!r}: {e}") from None
        ok = "sha256" not in entry or _sha256(arr) == entry["sha256"]
        checks.append((entry["key"], ok, f"sum {float(np.sum(arr, dtype=np.float64)):.6f}"))
        state[entry["key"]] = arr
    return state, checks


def train_config(meta: dict, model_cfg, compute_dtype: str = "float32"):
    """The LVIS recipe with the recorded architecture and the recorded number of points."""
    from configs import ov2seg_r50_lvis

    config = ov2seg_r50_lvis.get_config()
    config.model = model_cfg
    config.train.compute_dtype = compute_dtype
    loss = meta["config"].get("loss", {})
    if "num_points" in loss:
        config.loss.num_points = int(loss["num_points"])
    return config


def load_train_step_case(
    fixture_dir: str,
    *,
    weights: str | None = None,
    compute_dtype: str = "float32",
    extra_padding: int = 1,
    edit_config: Callable[[ml_collections.ConfigDict], None] | None = None,
) -> TrainStepCase:
    """Read a ``train_step/``-layout folder; raises ``FileNotFoundError``/``ValueError`` with the
    reason when it cannot be used. ``edit_config`` may change the config before anything is built
    (a test's way to break one rule)."""
    from ov2seg_jax.losses.config import CriterionConfig

    store, meta = _load(fixture_dir)
    state, derived_ok = weights_state_dict(fixture_dir, meta, weights)
    config = train_config(meta, infer_model_config(state), compute_dtype)
    if edit_config is not None:
        edit_config(config)
    converted = convert_state_dict(state, config.model, source=fixture_dir)
    if converted.classifier is None:
        raise ValueError(f"{fixture_dir}: the weights have no text classifier (zs_weight)")
    images = _require(store, "images")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"train_step.npz images must be (B, 3, H, W), got {images.shape}")
    b = images.shape[0]
    targets, counts = read_targets(store, b, extra_padding, "train_step.npz")
    cc = CriterionConfig.from_config(config.loss)
    order = meta["draw_order"]
    arrays = [(e.get("kind"), e["key"], _require(store, e["key"])) for e in order]
    q = _require(store, "pred0_logits").shape[1]
    c = converted.classifier.shape[0]
    num_layers = config.model.decoder.num_layers + 1
    draws, _ = layer_draws_from_records(
        arrays, num_layers, c, cc, b, q, targets.labels.shape[1], counts
    )
    batch = {
        "image": np.transpose(images, (0, 2, 3, 1)),
        "labels": np.asarray(targets.labels),
        "masks": np.asarray(targets.masks),
        "valid": np.asarray(targets.valid),
    }
    return TrainStepCase(
        fixture_dir, config, converted, batch, tuple(draws), counts, store, meta, derived_ok
    )


def _inverse(rule: Rule, a: np.ndarray) -> np.ndarray:
    """Our leaf back in the original's layout (one third of it for a fused in-projection)."""
    t = rule.transform
    if t == "conv_oihw_to_hwio":
        return np.transpose(a, (3, 2, 0, 1))
    if t == "linear_transpose" or (t.startswith("in_proj_") and t.endswith("_kernel")):
        return a.T
    return a


def to_source_layout(flat: dict[str, np.ndarray], rules: list[Rule]) -> dict[str, np.ndarray]:
    """``{'params/...': leaf}`` -> ``{state-dict key: tensor}``; q/k/v thirds are stacked back."""
    pieces: dict[str, list[tuple[str, np.ndarray]]] = {}
    for rule in rules:
        if rule.target in flat:
            pieces.setdefault(rule.source, []).append(
                (rule.transform, _inverse(rule, flat[rule.target]))
            )
    out = {}
    for source, parts in pieces.items():
        if len(parts) == 1:
            out[source] = parts[0][1]
        else:
            order = {"q": 0, "k": 1, "v": 2}
            parts.sort(key=lambda p: order[p[0].split("_")[2]])
            out[source] = np.concatenate([p[1] for p in parts], axis=0)
    return out


def _source_rules(config) -> list[Rule]:
    return [r for r in ov2seg_rules(config.model) if r.target.startswith("params/")]


def _params_flat(params) -> dict[str, np.ndarray]:
    return {
        "params/" + k: np.asarray(v, np.float32)
        for k, v in traverse_util.flatten_dict(jax.device_get(params), sep="/").items()
    }


def _lr_and_decay(rules, table, schedule) -> tuple[dict[str, float], dict[str, float]]:
    """Per state-dict name: the float32 lr of step 0 (as the optimizer forms it) and the decay."""
    lr0 = np.float32(schedule(0))
    lr, wd = {}, {}
    for rule in rules:
        h = table[rule.target[len("params/") :]]
        lr[rule.source] = float(lr0 * np.float32(h.lr_mult))
        wd[rule.source] = h.weight_decay
    return lr, wd


def rerun_update(case: TrainStepCase, result: StepResult, edit_config) -> StepResult:
    """``result`` with the optimizer step redone (eagerly, on our gradients) after
    ``edit_config(config)``: checks a changed rule without compiling the model again."""
    import copy

    from ov2seg_jax.train.optimizer import learning_rate_schedule, make_optimizer

    config = copy.deepcopy(case.config)
    edit_config(config)
    params = jax.tree.map(jnp.asarray, case.converted.variables["params"])
    tx, table = make_optimizer(config.optimizer, params)
    updates, _ = tx.update(result.flat_grads, tx.init(params), params)
    after = jax.tree.map(lambda p, u: p + u, params, updates)
    rules = _source_rules(config)
    lr, wd = _lr_and_decay(rules, table, learning_rate_schedule(config.optimizer))
    return dataclasses.replace(
        result, after=to_source_layout(_params_flat(after), rules), lr=lr, weight_decay=wd
    )


def run_step(case: TrainStepCase) -> StepResult:
    """One step of our trainer, built as ``--mode train`` builds it, replaying the draws."""
    from ov2seg_jax.losses.config import CriterionConfig
    from ov2seg_jax.models.ov2seg import build_model
    from ov2seg_jax.train.optimizer import learning_rate_schedule, make_optimizer
    from ov2seg_jax.train.state import create_train_state
    from ov2seg_jax.train.step import make_train_step

    config = case.config
    cc = CriterionConfig.from_config(config.loss)
    draws = case.draws

    def replay_loss_terms(outputs, targets, rng):
        del rng
        terms, matches = losses_from_draws(outputs, Targets(**targets), draws, cc)
        for layer, m in enumerate(matches):  # unweighted extras: the total ignores them
            terms[f"match{layer}/pred"] = m.pred_index
            terms[f"match{layer}/tgt"] = m.target_index
            terms[f"match{layer}/valid"] = m.valid
        return terms

    model = build_model(config.model)
    variables = jax.tree.map(jnp.asarray, case.converted.variables)
    tx, table = make_optimizer(config.optimizer, variables["params"])
    state = create_train_state(variables, tx, config.seed)
    schedule = learning_rate_schedule(config.optimizer)
    step = make_train_step(
        model,
        tx,
        replay_loss_terms,
        weight_dict(cc, config.model.decoder.num_layers),
        jnp.asarray(case.converted.classifier),
        learning_rate_fn=schedule,
        compute_dtype=config.train.compute_dtype,
        clip_norm=config.optimizer.clip_norm,
        diagnostics=True,
    )
    new_state, metrics = jax.jit(step)(state, jax.tree.map(jnp.asarray, case.batch))
    metrics = jax.device_get(metrics)
    rules = _source_rules(config)
    grads = to_source_layout(_params_flat(metrics["grads"]), rules)
    before = to_source_layout(_params_flat(state.params), rules)
    after = to_source_layout(_params_flat(new_state.params), rules)
    lr, wd = _lr_and_decay(rules, table, schedule)
    outputs = metrics["outputs"]
    heads = [outputs, *outputs.aux_outputs]
    predictions = {}
    for layer, head in enumerate(heads):
        predictions[f"pred{layer}_logits"] = np.asarray(head.pred_logits)
        predictions[f"pred{layer}_object_logits"] = np.asarray(head.pred_object_logits)
        predictions[f"pred{layer}_masks"] = np.asarray(head.pred_masks)
    matches = {}
    for layer in range(len(heads)):
        valid = np.asarray(metrics[f"match{layer}/valid"])
        for i in range(valid.shape[0]):
            matches[f"match{layer}_b{i}_pred"] = np.asarray(metrics[f"match{layer}/pred"])[i][
                valid[i]
            ]
            matches[f"match{layer}_b{i}_tgt"] = np.asarray(metrics[f"match{layer}/tgt"])[i][
                valid[i]
            ]
    losses = {k: float(v) for k, v in metrics.items() if k.startswith("loss_") and np.ndim(v) == 0}
    return StepResult(
        losses=losses,
        total=float(metrics["loss"]),
        grad_norm=float(metrics["grad_norm"]),
        clip_coef=float(metrics["clip_coef"]),
        predictions=predictions,
        matches=matches,
        grads=grads,
        before=before,
        after=after,
        lr=lr,
        weight_decay=wd,
        finite=bool(metrics["finite"]),
        flat_grads=metrics["grads"],
    )
