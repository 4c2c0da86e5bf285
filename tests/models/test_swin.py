"""Swin backbone against the original's Swin-B fixtures (`ov2seg_swinb/`).

Checks the stage-1 unit case (odd 7x13 grid: window padding, shift mask, odd patch merging), the
full backbone on frame 0 of the clip, and that the conversion rules cover the param tree exactly.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels.window_attention import available_implementations
from ov2seg_jax.convert.rules import TRANSFORMS, Rule
from ov2seg_jax.convert.swin_rules import (
    swin_backbone_rules,
    swin_ignored_source_keys,
    swin_imagenet_ignored_source_keys,
    swin_imagenet_rules,
    swin_imagenet_unfilled_targets,
)
from ov2seg_jax.models.backbones.swin import (
    SwinBlock,
    SwinStage,
    SwinTransformer,
    shift_window_mask,
    swin_from_preset,
)
from ov2seg_jax.parity.manifest import regenerate_state_dict

TOL = dict(atol=1e-4, rtol=1e-4)


def _model() -> SwinTransformer:
    return swin_from_preset("base", drop_path_rate=0.3)


def _param_shapes(model: SwinTransformer, hw: tuple[int, int] = (64, 96)) -> dict[str, tuple]:
    """'/'-joined variable paths (collection first) -> shape, without running the model."""
    tree = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, *hw, 3), jnp.float32))
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(str(k.key) for k in path): tuple(v.shape) for path, v in leaves}


def _apply_rules(rules: list[Rule], state: dict[str, np.ndarray]) -> dict:
    """Nested variables dict built from ``state`` by ``rules`` (test-local converter)."""
    out: dict = {}
    for rule in rules:
        node = out
        *parents, leaf = rule.target.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = jnp.asarray(TRANSFORMS[rule.transform](state[rule.source]))
    return out


@pytest.fixture(scope="module")
def swin_dir(fixtures_root: str) -> str:
    d = os.path.join(fixtures_root, "ov2seg_swinb")
    if not os.path.isdir(d):
        pytest.skip(f"Swin-B fixtures not found at {d}")
    return d


@pytest.fixture(scope="module")
def variables(swin_dir: str) -> dict:
    state = regenerate_state_dict(swin_dir)
    return _apply_rules(swin_backbone_rules(_model().depths, target_prefix="params"), state)


def test_rules_match_param_tree() -> None:
    model = _model()
    shapes = _param_shapes(model)
    rules = swin_backbone_rules(model.depths, target_prefix="params")
    targets = [r.target for r in rules]
    assert len(targets) == len(set(targets))
    assert set(targets) == set(shapes)

    imagenet = swin_imagenet_rules(model.depths, target_prefix="params")
    unfilled = swin_imagenet_unfilled_targets("params")
    assert {r.target for r in imagenet} == set(shapes) - set(unfilled)
    assert {r.source for r in imagenet} == {
        r.source.removeprefix("backbone.")
        for r in rules
        if not r.source.startswith("backbone.norm")
    }
    ignored = set(swin_imagenet_ignored_source_keys(model.depths))
    assert {"head.weight", "norm.bias", "layers.0.blocks.1.attn_mask"} <= ignored
    assert not ignored & {r.source for r in imagenet}


def test_rules_cover_fixture_checkpoint(swin_dir: str) -> None:
    import json

    with open(os.path.join(swin_dir, "manifest.json")) as f:
        entries = {e["key"]: tuple(e["shape"]) for e in json.load(f)["entries"]}
    model = _model()
    shapes = _param_shapes(model)
    rules = swin_backbone_rules(model.depths, target_prefix="params")
    backbone_keys = {k for k in entries if k.startswith("backbone.")}
    used = {r.source for r in rules}
    ignored = set(swin_ignored_source_keys(model.depths))
    assert used | ignored == backbone_keys
    assert not used & ignored
    for r in rules:
        dummy = np.zeros(entries[r.source], np.float32)
        assert TRANSFORMS[r.transform](dummy).shape == shapes[r.target], r


def test_shift_mask(swin_dir: str) -> None:
    unit = np.load(os.path.join(swin_dir, "swin_stage1_unit.npz"))
    mask = shift_window_mask(12, 24, 12, 6)
    np.testing.assert_array_equal(mask, unit["shift_attn_mask"])


@pytest.mark.parametrize("implementation", ["xla", "cpu"])
def test_stage1_unit(swin_dir: str, variables: dict, implementation: str) -> None:
    """Both window attention cores (the XLA reference and the native CPU one) give the original's
    block and stage outputs."""
    if implementation not in available_implementations():
        pytest.skip(f"window attention {implementation!r} does not run on this backend")
    unit = np.load(os.path.join(swin_dir, "swin_stage1_unit.npz"))
    hw = (int(unit["H"]), int(unit["W"]))
    stage_params = {"params": variables["params"]["layers_0"]}
    block_params = {"params": stage_params["params"]["blocks_0"]}
    x = jnp.asarray(unit["x"])

    block = SwinBlock(128, 4, 12, attention_implementation=implementation)
    block0 = block.apply(block_params, x, hw)
    stage = SwinStage(128, 2, 4, 12, attention_implementation=implementation)
    out, out_hw, merged, merged_hw = stage.apply(stage_params, x, hw)

    errs = {}
    for name, got in (("block0", block0), ("block1", out), ("merged", merged)):
        want = unit[name]
        assert got.shape == want.shape, name
        errs[name] = float(np.max(np.abs(np.asarray(got) - want)))
        np.testing.assert_allclose(np.asarray(got), want, **TOL, err_msg=name)
    assert out_hw == hw
    assert tuple(merged_hw) == tuple(unit["merged_hw"].tolist())
    print("stage-1 unit max abs errors:", errs)


def test_backbone_frame0(swin_dir: str, variables: dict) -> None:
    ref = np.load(os.path.join(swin_dir, "backbone_frame0.npz"))
    model = _model()
    images = jnp.asarray(ref["images"].transpose(0, 2, 3, 1))
    out = jax.jit(model.apply)(variables, images)
    assert set(out) == {"res2", "res3", "res4", "res5"}
    errs = {}
    for name, got in out.items():
        got = np.asarray(got).transpose(0, 3, 1, 2)
        want = ref[name]
        assert got.shape == want.shape, name
        errs[name] = float(np.max(np.abs(got - want)))
        np.testing.assert_allclose(got, want, **TOL, err_msg=name)
    print("backbone max abs errors:", errs)


def test_drop_path_train_mode() -> None:
    tiny = SwinTransformer(
        embed_dim=8, depths=(2, 2), num_heads=(1, 2), window_size=4, drop_path_rate=0.5
    )
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 32, 32, 3))
    shapes = jax.eval_shape(tiny.init, jax.random.PRNGKey(0), x)
    rng = np.random.default_rng(0)
    variables = jax.tree_util.tree_map(
        lambda s: jnp.asarray(rng.uniform(-0.5, 0.5, s.shape).astype(np.float32)), shapes
    )

    @jax.jit
    def run(rng: jax.Array) -> tuple[dict, dict]:
        evaluated = tiny.apply(variables, x)
        trained = tiny.apply(variables, x, train=True, rngs={"dropout": rng})
        return evaluated, trained

    a, c = run(jax.random.PRNGKey(2))
    assert c["res2"].shape == (4, 8, 8, 8) and c["res3"].shape == (4, 4, 4, 16)
    assert not np.allclose(np.asarray(a["res3"]), np.asarray(c["res3"]))
