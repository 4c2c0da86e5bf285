"""The optimizer rules, the schedule, and one update against torch's AdamW + clip_grad_norm_."""

import numpy as np
import pytest

from configs import ov2seg_r50_lvvis, tiny
from ov2seg_jax.convert.convert_ov2seg import abstract_variables
from ov2seg_jax.train.optimizer import (
    assign_hyperparams,
    learning_rate_schedule,
    make_optimizer,
    param_rules,
)


@pytest.fixture(scope="module")
def table():
    cfg = tiny.get_config()
    params = abstract_variables(cfg.model)["params"]
    return assign_hyperparams(params, param_rules(cfg.optimizer), cfg.optimizer.weight_decay)


@pytest.mark.parametrize(
    "path, lr_mult, wd",
    [
        ("backbone/conv1/kernel", 0.1, 0.05),
        ("backbone/layer1_0/conv2/kernel", 0.1, 0.05),
        ("pixel_decoder/adapter_1_norm/scale", 1.0, 0.0),
        ("pixel_decoder/encoder_layers_0/norm2/bias", 1.0, 0.0),
        ("pixel_decoder/level_embed", 1.0, 0.05),  # a bare nn.Parameter in the original
        ("pixel_decoder/encoder_layers_0/self_attn/sampling_offsets/kernel", 1.0, 0.05),
        ("predictor/decoder_norm/scale", 1.0, 0.0),
        ("predictor/query_feat", 1.0, 0.0),
        ("predictor/query_embed", 1.0, 0.0),
        ("predictor/level_embed", 1.0, 0.0),
        ("predictor/transformer_ffn_layers_0/norm/scale", 1.0, 0.0),
        ("predictor/transformer_ffn_layers_0/linear1/kernel", 1.0, 0.05),
        ("predictor/class_embed/linear_0/bias", 1.0, 0.05),
    ],
)
def test_rules(table, path, lr_mult, wd):
    assert table[path].lr_mult == pytest.approx(lr_mult)
    assert table[path].weight_decay == pytest.approx(wd)


def test_swin_position_tables_have_no_decay():
    opt = ov2seg_r50_lvvis.get_config().optimizer
    params = {
        "backbone": {
            "layers_0": {
                "blocks_0": {"attn": {"relative_position_bias_table": 0, "qkv": {"kernel": 0}}}
            },
            "patch_embed": {"norm": {"scale": 0}},
        }
    }
    t = assign_hyperparams(params, param_rules(opt), 0.05)
    assert t["backbone/layers_0/blocks_0/attn/relative_position_bias_table"].weight_decay == 0.0
    assert t["backbone/layers_0/blocks_0/attn/qkv/kernel"].weight_decay == 0.05
    assert t["backbone/patch_embed/norm/scale"].weight_decay == 0.0
    assert all(h.lr_mult == pytest.approx(0.1) for h in t.values())


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
