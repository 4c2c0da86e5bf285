"""The training loop: resume equals an uninterrupted run, devices do not change the result,
the loss falls, a non-finite loss stops the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from ov2seg_jax.models.ov2seg import build_model
from ov2seg_jax.train.loop import NonFiniteLossError, init_variables, train
from ov2seg_jax.train.run import make_loss_terms_fn
from tests.train.toy import toy_batches, toy_classifier, toy_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _train(c, workdir, **kw):
    loss_fn, weights = make_loss_terms_fn(c, None)
    return train(
        c,
        str(workdir),
        classifier=toy_classifier(c),
        loss_terms_fn=kw.pop("loss_fn", loss_fn),
        loss_weights=weights,
        batches=toy_batches(c.train.batch_size),
        **kw,
    )


def _leaves(variables):
    return jax.tree_util.tree_leaves_with_path(variables)


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    c = toy_config(num_steps=4)
    full = _train(c, tmp_path / "full")
    first = _train(c, tmp_path / "resumed", max_steps=2)
    assert first.final_step == 2
    assert not os.path.exists(first.model_dir)  # unfinished runs export no model
    second = _train(c, tmp_path / "resumed")
    assert second.final_step == 4 and os.path.isdir(second.model_dir)
    changed = 0
    for (path, a), (_, b) in zip(_leaves(full.variables), _leaves(second.variables), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))
    # and training did move the parameters
    init = init_variables(build_model(c.model), c.train, toy_classifier(c), c.seed)
    for (_, a), (_, b) in zip(_leaves(init), _leaves(full.variables), strict=True):
        changed += int(not np.array_equal(a, b))
    assert changed > 10


def test_loss_falls_on_toy_data(tmp_path):
    c = toy_config(num_steps=50, batch_size=4)
    c.train.checkpoint_every = 50
    result = _train(c, tmp_path)
    losses = [json.loads(line)["loss"] for line in open(result.metrics_path)]
    assert len(losses) == 50
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.7 * first, (first, last)


def test_non_finite_loss_stops_with_clear_error(tmp_path):
    c = toy_config(num_steps=6)
    loss_fn, _ = make_loss_terms_fn(c, None)

    def poisoned(outputs, targets, rng):
        terms = loss_fn(outputs, targets, rng)
        return {k: v * np.nan if k == "loss_mask" else v for k, v in terms.items()}

    with pytest.raises(NonFiniteLossError, match="not finite"):
        _train(c, tmp_path, loss_fn=poisoned)
    # the poisoned steps were never applied, so nothing past step 0 was checkpointed
    assert not os.path.isdir(tmp_path / "train" / "checkpoints" / "2")


SCRIPT = r"""
import sys, numpy as np, jax
sys.path.insert(0, {repo!r})
from tests.train.test_loop import _train
from tests.train.toy import toy_config
c = toy_config(num_steps=2, batch_size=8)
r = _train(c, {workdir!r})
flat = {{jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(r.variables)}}
np.savez({out!r}, n=jax.device_count(), **flat)
"""


def _run_on_devices(n: int, tmp_path) -> dict:
    out = str(tmp_path / f"params_{n}.npz")
    env = dict(
        os.environ,
        XLA_FLAGS=f"--xla_force_host_platform_device_count={n}",
        JAX_DISABLE_MOST_OPTIMIZATIONS="1",
    )
    code = SCRIPT.format(repo=REPO, workdir=str(tmp_path / f"run_{n}"), out=out)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = dict(np.load(out))
    assert int(data.pop("n")) == n
    return data


def test_eight_devices_equal_one_device(tmp_path):
    """Two steps, global batch 8: data parallel over 8 CPU devices vs 1 device.

    Only the order of floating-point reductions differs; after two AdamW steps (lr 1e-3) the
    parameters agree to 2e-6 (a thousandth of one step), which catches a wrong reduction.
    """
    one = _run_on_devices(1, tmp_path)
    eight = _run_on_devices(8, tmp_path)
    assert one.keys() == eight.keys()
    worst = max(float(np.max(np.abs(one[k] - eight[k]))) for k in one)
    assert worst < 2e-6, worst


def test_bfloat16_compute_keeps_float32_master_weights():
    """compute_dtype bfloat16: the forward/backward run in bfloat16, the parameters and the
    optimizer stay float32, and the loss agrees with the float32 step to bfloat16 precision."""
    from ov2seg_jax.train.optimizer import learning_rate_schedule, make_optimizer
    from ov2seg_jax.train.state import create_train_state
    from ov2seg_jax.train.step import make_train_step

    c = toy_config()
    classifier = toy_classifier(c)
    model = build_model(c.model)
    variables = init_variables(model, c.train, classifier, c.seed)
    tx, _ = make_optimizer(c.optimizer, variables["params"])
    loss_fn, weights = make_loss_terms_fn(c, None)
    batch = toy_batches(2)(0).__next__()
    out = {}
    for dtype in ("float32", "bfloat16"):
        step = make_train_step(
            model,
            tx,
            loss_fn,
            weights,
            classifier,
            learning_rate_fn=learning_rate_schedule(c.optimizer),
            compute_dtype=dtype,
        )
        state, metrics = jax.jit(step)(create_train_state(variables, tx, c.seed), batch)
        out[dtype] = (state, metrics)
    state, metrics = out["bfloat16"]
    assert bool(metrics["finite"]) and int(state.step) == 1
    dtypes = {leaf.dtype for leaf in jax.tree.leaves((state.params, state.opt_state))}
    assert dtypes <= {np.dtype("float32"), np.dtype("int32")}, dtypes
    ref = float(out["float32"][1]["loss"])
    assert abs(float(metrics["loss"]) - ref) < 0.05 * ref, (float(metrics["loss"]), ref)
    assert float(out["float32"][1]["loss"]) != float(metrics["loss"])  # bfloat16 really ran


def test_resume_target_is_abstract_and_matches_the_fresh_state(monkeypatch):
    """A resumed run restores into ``jax.eval_shape`` targets: ``initial_state(abstract=True)``
    never materialises the model's initial weights, and its shapes, dtypes and shardings equal
    those of the fresh state."""
    from ov2seg_jax.train import loop, sharding

    c = toy_config()
    model = build_model(c.model)
    classifier = toy_classifier(c)
    mesh = sharding.make_mesh()
    concrete = []  # per call of the model's init: did it compute real arrays?
    real_fn = loop.variables_fn

    def recording_fn(*args, **kwargs):
        init = real_fn(*args, **kwargs)

        def recording_init():
            out = init()
            concrete.append(not isinstance(jax.tree.leaves(out)[0], jax.core.Tracer))
            return out

        return recording_init

    monkeypatch.setattr(loop, "variables_fn", recording_fn)
    target, target_sh, _, _ = loop.initial_state(c, model, classifier, mesh, abstract=True)
    assert concrete and not any(concrete)  # only traced (eval_shape), nothing computed
    fresh, fresh_sh, _, _ = loop.initial_state(c, model, classifier, mesh)
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(fresh))
    assert jax.tree.structure(target) == jax.tree.structure(fresh)
    for t, f in zip(jax.tree.leaves(target), jax.tree.leaves(fresh), strict=True):
        assert isinstance(t, jax.ShapeDtypeStruct)
        assert (t.shape, t.dtype, t.sharding) == (f.shape, f.dtype, f.sharding)
    assert jax.tree.structure(target_sh) == jax.tree.structure(fresh_sh)
