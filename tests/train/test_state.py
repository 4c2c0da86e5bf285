"""Shard, then initialise: the step-0 state is computed under jit into its shardings, equals the
plain initialisation, and with FSDP each device only ever holds its own shards."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import numpy as np

from ov2seg_jax.models.ov2seg import build_model
from ov2seg_jax.train import sharding
from ov2seg_jax.train.loop import init_variables, initial_state
from ov2seg_jax.train.state import create_train_state
from tests.train.toy import toy_classifier, toy_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _pairs(a, b):
    la = jax.tree_util.tree_leaves_with_path(a)
    lb = jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    return [(jax.tree_util.keystr(p), x, y) for (p, x), y in zip(la, lb, strict=True)]


def test_sharded_initial_state_equals_the_plain_one():
    """initial_state (eval_shape, shardings, jit with out_shardings) gives the values of
    create_train_state on a plain init, with every leaf on its target sharding."""
    c = toy_config()
    model, classifier = build_model(c.model), toy_classifier(c)
    mesh = sharding.make_mesh()
    state, state_sh, tx, table = initial_state(c, model, classifier, mesh)
    plain = create_train_state(init_variables(model, c.train, classifier, c.seed), tx, c.seed)
    assert len(table) == len(jax.tree.leaves(state.params))
    for name, ours, ref in _pairs(state, plain):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref), err_msg=name)
    for name, leaf, target in _pairs(state, state_sh):
        assert leaf.sharding.is_equivalent_to(target, leaf.ndim), name


def test_init_fn_variables_go_into_the_state():
    """A pretrained part merged on the host ends up in the sharded state; the optimizer state
    is the fresh one (zero moments)."""
    c = toy_config()
    model, classifier = build_model(c.model), toy_classifier(c)

    def init_fn(variables):
        params = jax.tree.map(np.asarray, variables["params"])
        params["backbone"] = jax.tree.map(lambda x: np.full_like(x, 0.25), params["backbone"])
        return {**variables, "params": params}

    state, state_sh, _, _ = initial_state(
        c, model, classifier, sharding.make_mesh(), init_fn=init_fn
    )
    for leaf in jax.tree.leaves(state.params["backbone"]):
        np.testing.assert_array_equal(np.asarray(leaf), 0.25)
    moments = [x for x in jax.tree.leaves(state.opt_state) if x.ndim > 0]
    assert moments and all(not np.any(np.asarray(x)) for x in moments)
    for name, leaf, target in _pairs(state, state_sh):
        assert leaf.sharding.is_equivalent_to(target, leaf.ndim), name


SCRIPT = r"""
import sys, numpy as np, jax
sys.path.insert(0, {repo!r})
from ov2seg_jax.models.ov2seg import build_model
from ov2seg_jax.train import sharding
from ov2seg_jax.train.loop import variables_fn
from ov2seg_jax.train.optimizer import make_optimizer
from ov2seg_jax.train.state import abstract_train_state, create_train_state, init_sharded_train_state
from tests.train.toy import toy_classifier, toy_config

c = toy_config()
make = variables_fn(build_model(c.model), c.train, toy_classifier(c), c.seed)
tx, _ = make_optimizer(c.optimizer, jax.eval_shape(make)["params"])
abstract = abstract_train_state(make, tx, c.seed)
states = {{}}
for n in (8, 1):
    mesh = sharding.make_mesh(jax.devices()[:n])
    sh = sharding.state_shardings(mesh, abstract, fsdp=True, fsdp_min_size=4096)
    states[n] = init_sharded_train_state(make, tx, c.seed, sh)
    if n == 8:
        compiled = jax.jit(lambda: create_train_state(make(), tx, c.seed), out_shardings=sh).lower().compile()
        mem = compiled.memory_analysis()
        per_device_out = int(mem.output_size_in_bytes) if mem is not None else -1
total = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(abstract))
split, worst = 0, 0.0
for a, b in zip(jax.tree.leaves(states[8]), jax.tree.leaves(states[1])):
    if a.size >= 4096 and len(a.sharding.device_set) == 8 and not a.sharding.is_fully_replicated:
        assert a.addressable_shards[0].data.size * 8 == a.size, (a.shape,)
        split += 1
    worst = max(worst, float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if a.size else 0.0)
print("RESULT", split, worst, per_device_out, total)
"""


def test_fsdp_state_is_initialised_in_shards_on_eight_devices(tmp_path):
    """Eight CPU devices, FSDP over arrays of at least 4096 numbers: those leaves come out split
    in eight (each device holds an eighth), the values equal a one-device initialisation, and
    the compiled initialisation's per-device output is well under the whole state."""
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=8",
        JAX_DISABLE_MOST_OPTIMIZATIONS="1",
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(repo=REPO)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    split, worst, per_device_out, total = line.split()[1:]
    assert int(split) > 10, line
    assert float(worst) == 0.0, line
    if int(per_device_out) >= 0:
        assert int(per_device_out) < 0.5 * int(total), line
