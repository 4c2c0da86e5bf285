"""The criterion: parity with the original's recorded run, the checker CLI, the non-federated
mode, the weights, gradients and input errors."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import ov2seg_r50_lvis
from ov2seg_jax.config_fields import MissingConfigField
from ov2seg_jax.losses import (
    CriterionConfig,
    LayerDraws,
    compute_losses,
    losses_from_draws,
    total_loss,
    weight_dict,
)
from ov2seg_jax.losses.criterion import normalised_num_masks
from ov2seg_jax.models.outputs import HeadOutputs, ModelOutputs
from ov2seg_jax.parity.criterion_fixture import (
    check_criterion_case,
    check_criterion_dir,
    load_criterion_case,
)
from ov2seg_jax.parity.report import format_table

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _criterion(**overrides) -> CriterionConfig:
    """The original's LVIS loss settings (configs/ov2seg_r50_lvis.py) with a test's changes."""
    return CriterionConfig.from_config(ov2seg_r50_lvis.get_config().loss, **overrides)


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "check_criterion", os.path.join(_ROOT, "scripts", "check_criterion.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def criterion_dir(fixtures_root) -> str:
    path = os.path.join(fixtures_root, "criterion")
    if not os.path.isfile(os.path.join(path, "criterion.npz")):
        pytest.skip(f"criterion fixture not found in {path}")
    return path


# --------------------------------------------------------------------------------------------
# Parity with the original
# --------------------------------------------------------------------------------------------


def test_fixture_replay_matches_every_index_and_term(criterion_dir):
    rows = check_criterion_dir(criterion_dir)
    table = format_table(rows)
    assert all(r.passed for r in rows), table
    names = [r.name for r in rows]
    assert sum("matched" in n for n in names) == 3 * 2  # 3 layers x 2 images
    assert sum(n.startswith("loss/") for n in names) == 12
    assert sum("federated categories" in n for n in names) == 3


@pytest.mark.parametrize(
    "change, failing",
    [
        ({"class_loss_factor": 1.0}, "loss/loss_ce"),
        ({"class_weight": 0.0, "mask_weight": 0.0}, "matched"),
    ],
)
def test_fixture_replay_detects_a_wrong_detail(criterion_dir, change, failing):
    case = load_criterion_case(criterion_dir)
    case = case._replace(config=dataclasses.replace(case.config, **change))
    rows = check_criterion_case(case)
    assert any(failing in r.name and not r.passed for r in rows), format_table(rows)


def _write_fixture(path, store, meta):
    os.makedirs(path, exist_ok=True)
    np.savez(os.path.join(path, "criterion.npz"), **store)
    with open(os.path.join(path, "criterion.json"), "w") as f:
        json.dump(meta, f)


def _fixture_with_layers(criterion_dir, tmp_path, num_aux: int) -> str:
    """The fixture with aux layer 1 dropped (num_aux=1) or repeated as aux 2 (num_aux=3)."""
    with np.load(os.path.join(criterion_dir, "criterion.npz")) as z:
        store = {k: z[k] for k in z.files}
    with open(os.path.join(criterion_dir, "criterion.json")) as f:
        meta = json.load(f)
    per_layer = 5  # 2 matcher draws, the federated list, candidates, uniform points
    assert len(meta["draw_order"]) == 3 * per_layer
    if num_aux == 1:
        store = {k: v for k, v in store.items() if not k.startswith(("aux1_", "match2_"))}
        store = {k: v for k, v in store.items() if not k.endswith("_1")}
        store = {k: v for k, v in store.items() if not (k.startswith("draw") and int(k[4:6]) >= 10)}
        meta["draw_order"] = meta["draw_order"][: 2 * per_layer]
        meta["weight_dict"] = {k: v for k, v in meta["weight_dict"].items() if not k.endswith("_1")}
    else:
        for k in [k for k in store if k.startswith("aux1_")]:
            store["aux2_" + k[5:]] = store[k]
        for k in [k for k in store if k.startswith("match2_")]:
            store["match3_" + k[7:]] = store[k]
        for k in [k for k in store if k.startswith("loss/") and k.endswith("_1")]:
            store[k[:-2] + "_2"] = store[k]
        for entry in meta["draw_order"][2 * per_layer :]:
            new = dict(entry, index=entry["index"] + per_layer)
            meta["draw_order"].append(new)
            old_key = f"draw{entry['index']:02d}_{entry['kind']}"
            store[f"draw{new['index']:02d}_{entry['kind']}"] = store[old_key]
        meta["weight_dict"].update(
            {k[:-2] + "_2": v for k, v in meta["weight_dict"].items() if k.endswith("_1")}
        )
    path = str(tmp_path / f"aux{num_aux}")
    _write_fixture(path, store, meta)
    return path


def test_checker_cli_other_layer_counts_mismatch_and_bad_dirs(criterion_dir, tmp_path, capsys):
    main = _load_script().main
    assert main([criterion_dir, "--extra-padding", "0"]) == 0
    # fewer and more aux layers are read from the files
    assert main([_fixture_with_layers(criterion_dir, tmp_path, 1)]) == 0
    more = _fixture_with_layers(criterion_dir, tmp_path, 3)
    assert main([more]) == 0
    assert "loss/loss_dice_2" in capsys.readouterr().out
    # a recorded term that disagrees -> 1
    with np.load(os.path.join(more, "criterion.npz")) as z:
        store = {k: z[k] for k in z.files}
    store["loss/loss_mask_2"] = store["loss/loss_mask_2"] * 1.001
    _write_fixture(more, store, json.load(open(os.path.join(more, "criterion.json"))))
    assert main([more]) == 1
    # unusable folders -> 2 with a one-line reason
    capsys.readouterr()
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "not found" in capsys.readouterr().err
    del store["draw03_rand"]
    _write_fixture(more, store, json.load(open(os.path.join(more, "criterion.json"))))
    assert main([more]) == 2
    err = capsys.readouterr().err
    assert "draw03_rand" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------
# Synthetic batches
# --------------------------------------------------------------------------------------------

B, Q, N, C, HW, MASK_HW = 2, 5, 4, 6, (6, 8), (24, 32)
SMALL = _criterion(num_points=16, federated=False)


def _random_outputs(seed: int, num_aux: int = 2) -> ModelOutputs:
    rng = np.random.default_rng(seed)

    def head():
        logits = rng.normal(size=(B, Q, C + 1)).astype(np.float32)
        logits[..., -1] = 0
        return HeadOutputs(
            jnp.asarray(logits),
            jnp.asarray(rng.normal(size=(B, Q, 2)).astype(np.float32)),
            jnp.asarray(rng.normal(size=(B, Q, *HW)).astype(np.float32) * 2),
        )

    final = head()
    aux = tuple(head() for _ in range(num_aux))
    return ModelOutputs(
        final.pred_logits, final.pred_object_logits, final.pred_masks, jnp.zeros((B, Q, 8)), aux
    )


def _random_targets(seed: int) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    valid = np.array([[True, True, True, False], [True, False, False, False]])
    masks = np.zeros((B, N, *MASK_HW), np.uint8)
    for b, n in zip(*np.nonzero(valid), strict=True):
        y, x = rng.integers(0, 16), rng.integers(0, 20)
        masks[b, n, y : y + 8, x : x + 12] = 1
    masks[~valid] = 1  # padding that would matter if it were used
    labels = np.where(valid, rng.integers(0, C, size=(B, N)), -1).astype(np.int32)
    return {"labels": jnp.asarray(labels), "masks": jnp.asarray(masks), "valid": jnp.asarray(valid)}


def test_unfederated_class_and_object_losses_by_hand():
    outputs, targets = _random_outputs(0, num_aux=0), _random_targets(1)
    class_weights = np.linspace(0.5, 2.0, C).astype(np.float32)
    rng = np.random.default_rng(3)
    draws = [
        LayerDraws(
            rng.random((B, 16, 2), np.float32),
            np.zeros((0,), np.float32),
            rng.random((B, N, SMALL.num_candidates, 2), np.float32),
            rng.random((B, N, 16 - SMALL.num_important, 2), np.float32),
        )
    ]
    run = jax.jit(losses_from_draws, static_argnames="config")
    losses, (m,) = run(outputs, targets, draws, config=SMALL, class_weights=class_weights)
    classes = np.full((B, Q), C)
    for b, slot in zip(*np.nonzero(np.asarray(m.valid)), strict=True):
        classes[b, m.pred_index[b, slot]] = targets["labels"][b, m.target_index[b, slot]]
    assert (classes != C).sum() == 4  # every valid target is matched

    x = np.asarray(outputs.pred_logits, np.float64)[..., :C]
    t = np.eye(C + 1)[classes][..., :C]
    bce = np.logaddexp(0, x) - t * x
    matched = (classes != C)[..., None]
    expected_ce = 1.7 * np.sum(bce * class_weights * matched) / (B * Q)
    np.testing.assert_allclose(float(losses["loss_ce"]), expected_ce, rtol=1e-5)

    o = np.asarray(outputs.pred_object_logits, np.float64)
    logp = o - np.logaddexp(o[..., :1], o[..., 1:])
    target = np.where(classes != C, 0, 1)
    nll = -np.take_along_axis(logp, target[..., None], -1)[..., 0]
    w = np.where(target == 0, 1.0, 0.4)
    np.testing.assert_allclose(
        float(losses["loss_object_ce"]), (w * nll).sum() / w.sum(), rtol=1e-5
    )


def test_gradients_are_finite_under_jit_with_random_draws():
    outputs, targets = _random_outputs(2, num_aux=1), _random_targets(3)
    config = _criterion(num_points=16, num_fed_classes=4)
    weights = weight_dict(config, num_aux=1)
    class_weights = jnp.asarray([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])

    def loss_fn(outs, key):
        losses = compute_losses(outs, targets, key, config, class_weights=class_weights)
        return total_loss(losses, weights), losses

    step = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
    (value, losses), grads = step(outputs, jax.random.key(0))
    assert set(losses) == set(weights)
    assert np.isfinite(float(value))
    for layer in (grads, *grads.aux_outputs):
        for name in ("pred_logits", "pred_object_logits", "pred_masks"):
            g = np.asarray(getattr(layer, name))
            assert np.isfinite(g).all() and np.abs(g).sum() > 0, name
    # a different key draws different points, hence (slightly) different mask terms
    (_, other), _ = step(outputs, jax.random.key(1))
    assert float(other["loss_mask"]) != float(losses["loss_mask"])


def test_num_masks_normalisation():
    valid = jnp.asarray([[[True, True, False]], [[False, False, False]], [[True, True, True]]])
    per_device = jax.vmap(lambda v: normalised_num_masks(v, axis_name="d"), axis_name="d")(valid)
    np.testing.assert_allclose(np.asarray(per_device), [5 / 3] * 3)
    assert float(normalised_num_masks(valid[1])) == 1.0  # clamped
    assert float(normalised_num_masks(valid[0], num_masks=7.0)) == 7.0


def test_weight_dict_and_total_loss():
    config = _criterion()
    weights = weight_dict(config, num_aux=2)
    assert list(weights)[:5] == [
        "loss_object_ce",
        "loss_ce",
        "loss_mask",
        "loss_dice",
        "loss_object_ce_0",
    ]
    assert len(weights) == 12 and weights["loss_dice_1"] == 5.0 and weights["loss_ce_0"] == 2.0
    losses = {k: jnp.float32(i + 1) for i, k in enumerate(weights)} | {"unused": jnp.float32(1e3)}
    expected = sum(w * (i + 1) for i, w in enumerate(weights.values()))
    assert float(total_loss(losses, weights)) == pytest.approx(expected)
    with pytest.raises(ValueError, match="loss_dice_2"):
        total_loss(losses, weight_dict(config, num_aux=3))


def test_bad_inputs_name_the_field():
    outputs, targets = _random_outputs(0, num_aux=1), _random_targets(1)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="valid"):
        compute_losses(outputs, {k: v for k, v in targets.items() if k != "valid"}, key, SMALL)
    with pytest.raises(ValueError, match=r"targets\['masks'\]"):
        compute_losses(outputs, {**targets, "masks": targets["masks"][:, :2]}, key, SMALL)
    bad_aux = outputs.aux_outputs[0].replace(pred_object_logits=jnp.zeros((B, Q, 3)))
    with pytest.raises(ValueError, match=r"aux_outputs\[0\]\.pred_object_logits"):
        compute_losses(outputs.replace(aux_outputs=(bad_aux,)), targets, key, SMALL)
    labels = np.asarray(targets["labels"]).copy()
    labels[1, 0] = C
    with pytest.raises(ValueError, match=r"targets\['labels'\]\[1, 0\] = 6"):
        compute_losses(outputs, {**targets, "labels": labels}, key, SMALL)
    with pytest.raises(ValueError, match="class_weights"):
        compute_losses(outputs, targets, key, SMALL, class_weights=jnp.ones(C + 1))
    with pytest.raises(ValueError, match="importance_sample_ratio"):
        _criterion(importance_sample_ratio=1.5)


def test_a_loss_config_missing_a_field_names_it():
    loss = ov2seg_r50_lvis.get_config().loss
    del loss["class_loss_factor"]
    with pytest.raises(MissingConfigField, match=r"config\.loss\.class_loss_factor"):
        CriterionConfig.from_config(loss)
    # Fields of the section that the criterion does not read are for other readers.
    assert CriterionConfig.from_config(ov2seg_r50_lvis.get_config().loss).class_loss_factor == 1.7
