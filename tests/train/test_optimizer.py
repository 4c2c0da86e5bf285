"""The optimizer rules, the schedule, and one update against torch's AdamW + clip_grad_norm_."""

import json
import os
import re

import numpy as np
import pytest

from configs import ov2seg_r50_lvis, ov2seg_r50_lvvis, ov2seg_swinb_lvis, tiny
from ov2seg_jax.convert.convert_ov2seg import abstract_variables
from ov2seg_jax.convert.ov2seg_rules import ov2seg_rules
from ov2seg_jax.train.optimizer import (
    OptimizerRulesError,
    assign_hyperparams,
    format_rules_table,
    learning_rate_schedule,
    make_optimizer,
    parse_rules,
    write_rules_table,
)


def _table(cfg):
    params = abstract_variables(cfg.model)["params"]
    return assign_hyperparams(params, parse_rules(cfg.optimizer.rules)), params


@pytest.fixture(scope="module")
def table():
    return _table(tiny.get_config())[0]


@pytest.mark.parametrize(
    "path, lr_mult, wd",
    [
        ("backbone/conv1/kernel", 0.1, 0.05),
        ("backbone/layer1_0/conv2/kernel", 0.1, 0.05),
        ("pixel_decoder/adapter_1_norm/scale", 1.0, 0.0),
        ("pixel_decoder/encoder_layers_0/norm2/bias", 1.0, 0.0),
        ("pixel_decoder/level_embed", 1.0, 0.05),  # a bare nn.Parameter in the original
        ("pixel_decoder/encoder_layers_0/self_attn/sampling_offsets/bias", 1.0, 0.05),
        ("predictor/decoder_norm/scale", 1.0, 0.0),
        ("predictor/query_feat", 1.0, 0.0),
        ("predictor/query_embed", 1.0, 0.0),
        ("predictor/level_embed", 1.0, 0.0),
        ("predictor/transformer_ffn_layers_0/norm/scale", 1.0, 0.0),
        ("predictor/transformer_ffn_layers_0/linear1/bias", 1.0, 0.05),
        ("predictor/class_embed/linear_0/bias", 1.0, 0.05),
    ],
)
def test_rules(table, path, lr_mult, wd):
    assert table[path].lr_mult == pytest.approx(lr_mult)
    assert table[path].weight_decay == pytest.approx(wd)


def test_first_fullmatch_wins():
    params = {"a": {"norm": {"scale": 0, "bias": 0}, "x_bias": 0}}
    rules = parse_rules(
        [
            ("a/norm/bias", 1.0, 0.0, "first"),
            ("a/norm/.*", 2.0, 0.1, "second: a/norm/bias matched the first already"),
            (".*", 1.0, 0.05, "rest"),
        ]
    )
    t = assign_hyperparams(params, rules)
    assert (t["a/norm/bias"].rule, t["a/norm/scale"].rule, t["a/x_bias"].rule) == (
        "a/norm/bias",
        "a/norm/.*",
        ".*",
    )
    assert t["a/norm/scale"].lr_mult == 2.0 and t["a/norm/scale"].weight_decay == 0.1


def test_a_rule_matching_nothing_is_an_error_naming_it():
    cfg = tiny.get_config()
    cfg.optimizer.rules = (("predictor/typo_embed", 1.0, 0.0, "misspelt"), *cfg.optimizer.rules)
    with pytest.raises(OptimizerRulesError, match="'predictor/typo_embed'"):
        _table(cfg)
    # a search-style pattern that only matches a prefix is also unused under fullmatch
    cfg = tiny.get_config()
    cfg.optimizer.rules = (("backbone", 0.1, 0.05, "prefix only"), *cfg.optimizer.rules)
    with pytest.raises(OptimizerRulesError, match="'backbone'"):
        _table(cfg)


def test_an_uncovered_parameter_is_an_error_naming_it():
    cfg = tiny.get_config()
    cfg.optimizer.rules = tuple(r for r in cfg.optimizer.rules if r[0] != ".*")
    with pytest.raises(OptimizerRulesError, match="pixel_decoder/"):
        _table(cfg)


@pytest.mark.parametrize(
    "bad", [(), [("x",)], [("(", 1.0, 0.0, "bad regex")], [(".*", -1.0, 0.0, "negative")]]
)
def test_malformed_rules_are_errors(bad):
    with pytest.raises(OptimizerRulesError, match="config.optimizer.rules"):
        parse_rules(bad)


def _original_group(torch_name: str, fixture_groups: dict) -> tuple[float, float]:
    """(lr multiplier, weight decay) the original's builder gives ``torch_name``.

    The head and the ResNet: the group the train_step fixture recorded for the same parameter
    of the same module kind (layer indices generalised). The Swin backbone (not in the fixture):
    the builder's rules written over torch names: lr x0.1 in the backbone, no decay for LayerNorm
    modules (``norm``, ``norm1``, ``norm2``, ``norm0``..``norm3``) and the position tables.
    """
    if torch_name.startswith("backbone.") and "base." not in torch_name:
        no_decay = re.search(r"(^|\.)norm\d*\.(weight|bias)$", torch_name) or (
            "relative_position_bias_table" in torch_name
        )
        return 0.1, 0.0 if no_decay else 0.05
    return fixture_groups[re.sub(r"\.\d+\.", ".#.", torch_name)]


@pytest.mark.parametrize("module", [ov2seg_r50_lvis, ov2seg_swinb_lvis])
def test_lvis_configs_apply_the_originals_groups(fixtures_root, module):
    """Every parameter of the full R50 / Swin-B LVIS models gets the lr and weight decay of the
    original's optimizer (train_step fixture: one group per parameter, with its lr and decay)."""
    path = os.path.join(fixtures_root, "train_step", "train_step.json")
    if not os.path.isfile(path):
        pytest.skip(f"{path} absent")
    with open(path) as f:
        meta = json.load(f)
    base = meta["config"]["solver"]["BASE_LR"]
    fixture_groups = {}
    for p in meta["parameters"]:
        key = re.sub(r"\.\d+\.", ".#.", p["name"])
        group = (round(p["lr"] / base, 6), p["weight_decay"])
        assert fixture_groups.setdefault(key, group) == group, key
    cfg = module.get_config()
    table, _ = _table(cfg)
    sources = {
        r.target[len("params/") :]: r.source
        for r in ov2seg_rules(cfg.model)
        if r.target.startswith("params/")
    }
    assert set(sources) == set(table)
    wrong = []
    for path_, h in table.items():
        want = _original_group(sources[path_], fixture_groups)
        if (round(h.lr_mult, 6), h.weight_decay) != want:
            wrong.append((path_, sources[path_], h, want))
    assert not wrong, wrong[:5]
    assert cfg.optimizer.base_lr == base


def test_rules_table_is_written_and_summarised(tmp_path):
    cfg = tiny.get_config()
    table, params = _table(cfg)
    out = write_rules_table(table, params, cfg.optimizer.base_lr, str(tmp_path))
    lines = open(out).read().splitlines()
    assert lines[0].split("\t") == ["path", "shape", "numel", "lr", "weight_decay", "rule"]
    rows = {ln.split("\t")[0]: ln.split("\t") for ln in lines[1:]}
    assert set(rows) == set(table)
    assert rows["backbone/conv1/kernel"][3:] == ["1e-05", "0.05", "backbone/.*"]
    assert rows["predictor/query_feat"][4:] == [
        "0",
        "predictor/(query_feat|query_embed|level_embed)",
    ]
    summary = format_rules_table(table, parse_rules(cfg.optimizer.rules))
    counts = {ln.split()[0]: int(ln.split()[3]) for ln in summary.splitlines()[1:]}
    assert sum(counts.values()) == len(table)
    assert counts["backbone/.*"] == sum(p.startswith("backbone/") for p in table)


def test_schedule_matches_warmup_multistep():
    opt = ov2seg_r50_lvvis.get_config().optimizer
    opt.warmup_factor = 0.001
    opt.warmup_iters = 10
    opt.decay_steps = (20, 30)
    sched = learning_rate_schedule(opt)

    def expected(it):  # detectron2's WarmupMultiStepLR, "linear" warmup
        f = 1.0
        if it < 10:
            a = it / 10
            f = 0.001 * (1 - a) + a
        return 1e-4 * f * 0.1 ** sum(it >= s for s in (20, 30))

    for it in [0, 1, 5, 9, 10, 19, 20, 29, 30, 100]:
        assert float(sched(it)) == pytest.approx(expected(it), rel=1e-6)


def test_one_update_equals_torch_adamw():
    torch = pytest.importorskip("torch")
    import jax
    import jax.numpy as jnp

    opt = ov2seg_r50_lvvis.get_config().optimizer
    opt.clip_norm = 0.5
    rng = np.random.default_rng(0)
    params = {
        "backbone": {"conv": {"kernel": rng.normal(size=(3, 4)).astype(np.float32)}},
        "predictor": {
            "query_feat": rng.normal(size=(5, 4)).astype(np.float32),
            "decoder_norm": {"scale": rng.normal(size=(4,)).astype(np.float32)},
            "mlp": {"kernel": rng.normal(size=(4, 4)).astype(np.float32)},
        },
    }
    grads = jax.tree.map(lambda p: rng.normal(size=p.shape).astype(np.float32), params)
    opt.rules = (
        ("backbone/.*", 0.1, 0.05, ""),
        ("predictor/(query_feat|decoder_norm/scale)", 1.0, 0.0, ""),
        (".*", 1.0, 0.05, ""),
    )
    tx, table = make_optimizer(opt, params)
    state = tx.init(params)
    p = params
    for _ in range(3):
        updates, state = tx.update(grads, state, p)
        p = jax.tree.map(lambda a, u: a + u, p, updates)

    flat = {k: np.asarray(v) for k, v in _flatten(params).items()}
    tparams = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in flat.items()}
    groups = [
        {
            "params": [tparams[k]],
            "lr": opt.base_lr * table[k].lr_mult,
            "weight_decay": table[k].weight_decay,
        }
        for k in flat
    ]
    topt = torch.optim.AdamW(groups, lr=opt.base_lr, betas=(opt.b1, opt.b2), eps=opt.eps)
    gflat = _flatten(grads)
    for _ in range(3):
        for k, tp in tparams.items():
            tp.grad = torch.tensor(gflat[k])
        torch.nn.utils.clip_grad_norm_(list(tparams.values()), opt.clip_norm)
        topt.step()
    ours = _flatten(p)
    for k in flat:
        np.testing.assert_allclose(
            np.asarray(ours[k]), tparams[k].detach().numpy(), rtol=1e-6, atol=1e-7, err_msg=k
        )
    assert float(jnp.abs(ours["predictor/mlp/kernel"] - flat["predictor/mlp/kernel"]).max()) > 1e-5


def _flatten(tree):
    from flax import traverse_util

    return traverse_util.flatten_dict(tree, sep="/")
