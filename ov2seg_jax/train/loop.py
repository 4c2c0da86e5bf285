"""The training loop: build everything from the config, resume, step, log, save, evaluate.

``train(config, workdir)`` is what ``--mode train`` runs. Layout of ``workdir``::

    train/checkpoints/<step>/{state,meta}   Orbax CheckpointManager (async, keep last N)
    train/metrics.jsonl, events.out.*       logs (JSON lines + TensorBoard)
    checkpoint/                             the final model directory (what predict/evaluate read)

Running it again on the same workdir resumes from the newest checkpoint (parameters, optimizer,
step, PRNG key and data position), so an interrupted run ends with the same parameters as an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from ov2seg_jax import checkpoint as model_checkpoint
from ov2seg_jax.models.ov2seg import build_model
from ov2seg_jax.train import checkpoints, distributed, sharding
from ov2seg_jax.train.metrics_writer import MetricsWriter
from ov2seg_jax.train.optimizer import (
    format_rules_table,
    learning_rate_schedule,
    make_optimizer,
    parse_rules,
    write_rules_table,
)
from ov2seg_jax.train.state import (
    TrainState,
    abstract_train_state,
    init_sharded_train_state,
    model_variables,
    shard_train_state,
)
from ov2seg_jax.train.step import make_train_step

# (variables, step) -> metrics to log (e.g. AP); called every ``train.eval_every`` steps.
EvalFn = Callable[[dict, int], dict[str, float]]


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient norm became NaN/Inf."""


@dataclasses.dataclass
class TrainResult:
    final_step: int
    model_dir: str
    metrics_path: str
    last_metrics: dict[str, float]
    variables: dict  # the final model variables, on the host


def variables_fn(model, cfg: ml_collections.ConfigDict, classifier: np.ndarray, seed: int):
    """A traceable ``() -> variables`` ({'params', 'frozen'}): the model's init from ``seed`` on a
    dummy ``cfg.init_image_size`` frame (for ``jax.eval_shape`` and ``jit``)."""
    size = cfg.init_image_size
    classifier = np.asarray(classifier, np.float32)

    def init():
        images = jnp.zeros((1, size, size, 3), jnp.float32)
        rngs = {"params": jax.random.key(seed), "dropout": jax.random.key(seed + 1)}
        return model.init(rngs, images, jnp.asarray(classifier))

    return init


def init_variables(model, cfg: ml_collections.ConfigDict, classifier: np.ndarray, seed: int):
    """Fresh model variables ({'params', 'frozen'}) from ``seed``."""
    return jax.jit(variables_fn(model, cfg, classifier, seed))()


def initial_state(
    config: ml_collections.ConfigDict,
    model,
    classifier: np.ndarray,
    mesh,
    *,
    init_fn: Callable[[dict], dict] | None = None,
    abstract: bool = False,
):
    """Fresh ``(state, state_shardings, tx, rules_table)``, the state sharded over ``mesh``.

    Shard, then initialise: the shardings are chosen from the abstract state
    (``jax.eval_shape``) and the state is computed under ``jit`` into them, never whole on one
    device. ``init_fn`` may replace parts of the fresh variables (a pretrained backbone, merged
    on the host); the state is then rebuilt from them into the same shardings. ``abstract``
    returns the state as ``jax.ShapeDtypeStruct`` leaves with their shardings and runs no
    ``model.init``: the restore target of a resumed run.
    """
    make_variables = variables_fn(model, config.train, classifier, config.seed)
    tx, table = make_optimizer(config.optimizer, jax.eval_shape(make_variables)["params"])
    abstract_state = abstract_train_state(make_variables, tx, config.seed)
    state_sh = sharding.state_shardings(mesh, abstract_state, fsdp=config.distributed.fsdp)
    if abstract:
        state = jax.tree.map(
            lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh),
            abstract_state,
            state_sh,
        )
        return state, state_sh, tx, table
    state = init_sharded_train_state(make_variables, tx, config.seed, state_sh)
    if init_fn is not None:
        state = shard_train_state(init_fn(model_variables(state)), tx, config.seed, state_sh)
    return state, state_sh, tx, table


def jitted_train_step(
    config: ml_collections.ConfigDict,
    model,
    tx,
    classifier: np.ndarray,
    loss_terms_fn,
    loss_weights: dict[str, float],
    mesh,
    state_sh,
):
    """The train step jitted with the loop's shardings (batch split over the mesh, metrics
    replicated) and the state donated."""
    return jax.jit(
        make_train_step(
            model,
            tx,
            loss_terms_fn,
            loss_weights,
            jnp.asarray(classifier),
            learning_rate_fn=learning_rate_schedule(config.optimizer),
            compute_dtype=config.train.compute_dtype,
        ),
        in_shardings=(state_sh, sharding.batch_sharding(mesh)),
        out_shardings=(state_sh, sharding.replicated(mesh)),
        donate_argnums=0,
    )


def _host_metrics(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(metrics).items()}


def train(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    classifier: np.ndarray,
    loss_terms_fn,
    loss_weights: dict[str, float],
    batches: Callable[[int], Iterator[dict[str, np.ndarray]]],
    eval_fn: EvalFn | None = None,
    init_fn: Callable[[dict], dict] | None = None,
    max_steps: int | None = None,
) -> TrainResult:
    """Train ``config.model`` for ``config.train.num_steps`` steps (or until ``max_steps``).

    ``batches(start_batch)`` yields this host's batches from a position (its share of the global
    batch); ``init_fn`` may replace parts of the fresh variables (pretrained backbone).
    ``max_steps`` stops early (a test's way to interrupt a run) without changing the schedule.
    """
    tc = config.train
    mesh = sharding.make_mesh()  # every device of the process group (joined by the entry point)
    n_dev = mesh.devices.size
    if tc.batch_size % n_dev:
        raise ValueError(
            f"config.train.batch_size={tc.batch_size} must be divisible by the {n_dev} devices"
        )
    model = build_model(config.model)
    train_dir = os.path.join(workdir, "train")
    manager = checkpoints.make_manager(
        os.path.join(train_dir, "checkpoints"),
        keep=tc.keep_checkpoints,
        best_metric=tc.best_metric,
    )

    # A resumed run restores into eval_shape targets: no model.init of weights it overwrites.
    resuming = manager.latest_step() is not None
    state, state_sh, tx, table = initial_state(
        config, model, classifier, mesh, init_fn=init_fn, abstract=resuming
    )
    restored = checkpoints.restore_latest(manager, state) if resuming else None
    if restored is None and resuming:
        state, state_sh, tx, table = initial_state(config, model, classifier, mesh, init_fn=init_fn)
    data_position = 0
    if restored is not None:
        state, meta = restored
        data_position = int(meta["data_position"])
        if jax.process_index() == 0:
            print(f"resumed from step {int(state.step)} ({manager.directory})")
    if jax.process_index() == 0:
        rules_file = write_rules_table(table, state.params, config.optimizer.base_lr, train_dir)
        if restored is None:
            rules = parse_rules(config.optimizer.rules)
            print(f"optimizer rules (every parameter in {rules_file}):")
            print(format_rules_table(table, rules))

    step_fn = jitted_train_step(
        config, model, tx, classifier, loss_terms_fn, loss_weights, mesh, state_sh
    )

    writer = MetricsWriter(train_dir)
    start = int(state.step)
    end = tc.num_steps if max_steps is None else min(tc.num_steps, max_steps)
    last: dict[str, float] = {}
    iterator = batches(data_position)
    pending = None  # the previous step's metrics, checked while the next step runs
    t_last, n_since = time.perf_counter(), 0
    bar = tqdm(
        total=end, initial=start, desc="train", unit="step", disable=jax.process_index() != 0
    )
    try:
        for step in range(start, end):
            local = next(iterator)
            data_position += 1
            state, metrics = step_fn(state, sharding.global_batch(local, mesh))
            if pending is not None:
                _check_finite(pending)
            pending = metrics
            n_since += 1
            done = step + 1
            if done % tc.log_every == 0 or done == end:
                last = _host_metrics(metrics)
                _check_finite(metrics)
                elapsed = time.perf_counter() - t_last
                last["step_time"] = elapsed / n_since
                last["images_per_second"] = tc.batch_size * n_since / elapsed
                t_last, n_since = time.perf_counter(), 0
                # examples the data pipeline skipped (missing/corrupt files, bad annotations)
                problems = getattr(iterator, "problems", None) or {}
                last.update({f"data/{k}": float(v) for k, v in problems.items()})
                writer.write(done, last)
                bar.set_postfix(loss=f"{last['loss']:.3f}", lr=f"{last['learning_rate']:.2e}")
            bar.update(1)
            if done % tc.checkpoint_every == 0 or done == end:
                _check_finite(metrics)
                eval_metrics = None
                if (
                    eval_fn is not None
                    and tc.eval_every
                    and (done % tc.eval_every == 0 or done == end)
                ):
                    eval_metrics = eval_fn(model_variables(state), done)
                    writer.write(done, eval_metrics, prefix="eval/")
                checkpoints.save(
                    manager,
                    state,
                    {"data_position": data_position, "batch_size": tc.batch_size},
                    metrics=eval_metrics,
                    force=True,
                )
    finally:
        bar.close()
        manager.wait_until_finished()
        writer.close()

    final = int(state.step)
    variables = distributed.host_copy(model_variables(state))  # a collective: every process
    model_dir = os.path.join(workdir, "checkpoint")
    if final == tc.num_steps:  # every process takes part; process 0 writes
        model_checkpoint.save_model(model_dir, variables, config.model, classifier)
    manager.close()
    metrics_path = os.path.join(train_dir, "metrics.jsonl")
    return TrainResult(final, model_dir, metrics_path, last, variables)


def _check_finite(metrics: dict) -> None:
    if not bool(jax.device_get(metrics["finite"])):
        m = _host_metrics(metrics)
        raise NonFiniteLossError(
            "the loss or gradient norm is not finite (loss "
            f"{m['loss']}, grad_norm {m['grad_norm']}); the state of the last good step is "
            "kept in the newest checkpoint. Lower the learning rate or check the data."
        )


__all__ = ["TrainResult", "TrainState", "NonFiniteLossError", "train", "init_variables"]
