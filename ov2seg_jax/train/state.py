"""The train state: everything an interrupted run needs to continue exactly.

Shard, then initialise: :func:`abstract_train_state` gives the state's shapes without computing
anything (``jax.eval_shape``), the shardings are chosen from those, and
:func:`init_sharded_train_state` computes the step-0 state under ``jit`` with those
``out_shardings``, so each device only ever holds its own shards: no full copy is made on one
device first and moved afterwards, and a model larger than one device's memory can start on many.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """``step`` (int32 scalar), trainable ``params``, the ``frozen`` collection (frozen batch-norm
    statistics; never updated), the optimizer state and ``rng``, a raw uint32 PRNG key from which
    every step's randomness is folded in by step number (so a resumed run draws the same numbers).
    """

    step: jax.Array
    params: Any
    frozen: Any
    opt_state: optax.OptState
    rng: jax.Array


def create_train_state(variables: dict, tx: optax.GradientTransformation, seed: int) -> TrainState:
    """A step-0 state from model ``variables`` ({'params': ..., 'frozen': ...})."""
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        frozen=variables.get("frozen", {}),
        opt_state=tx.init(params),
        rng=jax.random.key_data(jax.random.key(seed)),
    )


def abstract_train_state(
    init_variables: Callable[[], dict], tx: optax.GradientTransformation, seed: int
) -> TrainState:
    """The step-0 state as ``jax.ShapeDtypeStruct`` leaves; nothing is computed or allocated.

    ``init_variables``: a traceable ``() -> variables`` (the model's ``init`` on dummy inputs).
    """
    return jax.eval_shape(lambda: create_train_state(init_variables(), tx, seed))


def init_sharded_train_state(
    init_variables: Callable[[], dict], tx: optax.GradientTransformation, seed: int, shardings
) -> TrainState:
    """The step-0 state computed under ``jit`` straight into ``shardings`` (a :class:`TrainState`
    of shardings, e.g. from :func:`ov2seg_jax.train.sharding.state_shardings` of
    :func:`abstract_train_state`)."""
    return jax.jit(
        lambda: create_train_state(init_variables(), tx, seed), out_shardings=shardings
    )()


def shard_train_state(
    variables: dict, tx: optax.GradientTransformation, seed: int, shardings
) -> TrainState:
    """A step-0 state from given ``variables`` (e.g. with a pretrained backbone merged in on the
    host), its optimizer state initialised under ``jit`` into ``shardings``."""
    return jax.jit(lambda v: create_train_state(v, tx, seed), out_shardings=shardings)(variables)


def model_variables(state: TrainState) -> dict:
    """The variables the model is applied with (and that inference checkpoints hold)."""
    variables = {"params": state.params}
    if state.frozen:
        variables["frozen"] = state.frozen
    return variables
