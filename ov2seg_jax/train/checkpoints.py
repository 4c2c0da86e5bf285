"""Training checkpoints through an Orbax ``CheckpointManager``.

Each saved step holds two items: ``state`` (the whole :class:`TrainState`: parameters, frozen
statistics, optimizer state, step and PRNG key) and ``meta`` (JSON: the step, the data position,
i.e. how many per-host batches the input pipeline has yielded, and the global batch size). The
input pipeline is a pure function of (seed, position), so restoring both continues a run exactly
where it stopped. Saves are asynchronous; the manager keeps the last ``keep`` steps and, when a
``best_metric`` is given, also the best one by that metric.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from ov2seg_jax.train.state import TrainState


def make_manager(
    directory: str,
    *,
    keep: int = 3,
    save_every: int = 1,
    best_metric: str = "",
    asynchronous: bool = True,
) -> ocp.CheckpointManager:
    best = {}
    if best_metric:
        best = dict(
            best_fn=lambda metrics: metrics[best_metric],
            best_mode="max",
            keep_checkpoints_without_metrics=True,
        )
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        save_interval_steps=save_every,
        enable_async_checkpointing=asynchronous,
        **best,
    )
    return ocp.CheckpointManager(
        os.path.abspath(directory), options=options, item_names=("state", "meta")
    )


def save(
    manager: ocp.CheckpointManager,
    state: TrainState,
    meta: dict[str, Any],
    *,
    metrics: dict[str, float] | None = None,
    force: bool = False,
) -> bool:
    """Save ``state`` at its step (asynchronously); returns whether a save was started."""
    step = int(jax.device_get(state.step))
    return manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(dict(meta, step=step))
        ),
        metrics=metrics,
        force=force,
    )


def restore_latest(
    manager: ocp.CheckpointManager, abstract_state: TrainState
) -> tuple[TrainState, dict[str, Any]] | None:
    """The newest saved (state, meta), laid out as ``abstract_state`` says; None if none saved.

    ``abstract_state`` is a pytree of ``jax.ShapeDtypeStruct`` with shardings, so the restored
    arrays land directly on the right devices.
    """
    step = manager.latest_step()
    if step is None:
        return None
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
        ),
    )
    return restored["state"], dict(restored["meta"])
