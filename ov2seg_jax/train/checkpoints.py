"""Training checkpoints through an Orbax ``CheckpointManager``.

Each saved step holds two items: ``state`` (the whole :class:`TrainState`: parameters, frozen
statistics, optimizer state, step and PRNG key) and ``meta`` (JSON: the step, the data position,
i.e. how many per-host batches the input pipeline has yielded, and the global batch size). The
input pipeline is a pure function of (seed, position), so restoring both continues a run exactly
where it stopped. Saves are asynchronous; the manager keeps the last ``keep`` steps and, when a
``best_metric`` is given, also the best one by that metric.

Resume order: the newest step that reads back whole. A damaged or incomplete step (a file
missing or cut short, e.g. by a crash during a copy) is reported in one line, moved to
``damaged_checkpoints/`` beside the checkpoint folder (kept for inspection, and out of the way of
the step numbers the run will save again), and the previous step is restored instead. When no
step reads back, the run stops with one line naming the newest one.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp

from ov2seg_jax.checkpoint_damage import CheckpointDamagedError, check_item, reading
from ov2seg_jax.train.state import TrainState

DAMAGED = "damaged_checkpoints"
_ADVICE = "resume from the previous training checkpoint"


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
    """The newest readable saved (state, meta), laid out as ``abstract_state`` says; None if
    none saved. Damaged newer steps are moved aside, saying so (see the module docstring).

    ``abstract_state`` is a pytree of ``jax.ShapeDtypeStruct`` with shardings, so the restored
    arrays land directly on the right devices.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    if not steps:
        return None
    damaged: list[tuple[int, CheckpointDamagedError]] = []
    for step in steps:
        try:
            restored = restore_step(manager, step, abstract_state)
        except CheckpointDamagedError as e:
            print(
                f"training checkpoint {e.directory} is damaged or incomplete: {e.entry}: {e.reason}"
            )
            damaged.append((step, e))
            continue
        if damaged:
            for bad, _ in damaged:
                moved = _move_aside(manager, bad)
                print(f"moved the damaged training checkpoint of step {bad} to {moved}")
            manager.reload()
            print(f"resuming from the previous training checkpoint, step {step}")
        return restored
    newest = damaged[0][1]
    earlier = "no earlier step reads back either" if len(steps) > 1 else "there is no earlier step"
    raise CheckpointDamagedError(
        newest.directory,
        newest.entry,
        newest.reason,
        f"{earlier}: move {os.fspath(manager.directory)} aside to train from the start",
    )


def restore_step(
    manager: ocp.CheckpointManager, step: int, abstract_state: TrainState
) -> tuple[TrainState, dict[str, Any]]:
    """(state, meta) of ``step``; :class:`CheckpointDamagedError` if its folder is damaged."""
    step_dir = os.path.join(os.fspath(manager.directory), str(step))
    check_item(step_dir, os.path.join(step_dir, "state"), _ADVICE)
    meta_file = os.path.join(step_dir, "meta", "metadata")
    try:
        with open(meta_file, encoding="utf-8") as f:
            json.load(f)
    except (OSError, ValueError) as e:
        reason = "missing" if isinstance(e, FileNotFoundError) else f"unreadable ({e})"
        raise CheckpointDamagedError(step_dir, "meta/metadata", reason, _ADVICE) from e
    with reading(step_dir, os.path.join(step_dir, "state"), _ADVICE):
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
            ),
        )
    return restored["state"], dict(restored["meta"])


def _move_aside(manager: ocp.CheckpointManager, step: int) -> str:
    """Move step ``step``'s folder to ``damaged_checkpoints/`` beside the checkpoint folder."""
    root = os.fspath(manager.directory)
    target = os.path.join(os.path.dirname(root), DAMAGED, str(step))
    n = 0
    while os.path.exists(target):
        n += 1
        target = os.path.join(os.path.dirname(root), DAMAGED, f"{step}.{n}")
    if jax.process_index() == 0:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.move(os.path.join(root, str(step)), target)
    return target
