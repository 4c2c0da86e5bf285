"""The train state: everything an interrupted run needs to continue exactly."""

from __future__ import annotations

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


def model_variables(state: TrainState) -> dict:
    """The variables the model is applied with (and that inference checkpoints hold)."""
    variables = {"params": state.params}
    if state.frozen:
        variables["frozen"] = state.frozen
    return variables
