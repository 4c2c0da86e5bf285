"""The one entry point: ``python -m ov2seg_jax.main --config configs/X.py --workdir DIR --mode M``.

Flags only: the work is done by one function per mode, ``MODES[mode](config, workdir)``: the
modes of :mod:`ov2seg_jax.modes` and ``all``, which runs several of them
(:mod:`ov2seg_jax.end_to_end`). Any config field can be overridden with ``--config.a.b=value``.
Before any mode runs, the process joins its process group (``config.distributed``; one process
needs nothing), since JAX accepts a group only before its first computation.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from configs import ov2seg_r50_lvvis
from ov2seg_jax import modes
from ov2seg_jax.compile_cache import enable_compilation_cache
from ov2seg_jax.config_fields import MissingConfigField, check_complete
from ov2seg_jax.end_to_end import run_end_to_end
from ov2seg_jax.train import distributed

MODES = {**modes.MODES, "all": run_end_to_end}

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and outputs.")
_MODE = flags.DEFINE_enum(
    "mode", None, sorted(MODES), "What to run (default: the config's default_mode)."
)
flags.mark_flags_as_required(["config", "workdir"])

# Modes that train, and so need a global batch that divides over the devices.
TRAINING_MODES = ("train", "all")


def _fail(message: str, status: int, group: bool) -> None:
    print(message, file=sys.stderr)
    if group:
        # Skip the group's shutdown barrier: the other processes may be waiting in a collective
        # for this one, and would hold it for shutdown_timeout_s. They see it leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax logs every file operation at INFO
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    workdir = os.path.abspath(_WORKDIR.value)
    os.makedirs(workdir, exist_ok=True)
    group = False
    try:
        config = modes.expand_workdir(_CONFIG.value, workdir)
        check_complete(config, ov2seg_r50_lvvis.get_config())
        mode = _MODE.value or config.default_mode
        distributed.start(config.distributed)
        group = config.distributed.auto_detect or config.distributed.num_processes > 1
        enable_compilation_cache(config.compilation_cache_dir)
        if mode in TRAINING_MODES:
            distributed.check_global_batch(config.train.batch_size)
        MODES[mode](config, workdir)
    except (modes.UserError, MissingConfigField, distributed.DistributedError) as e:
        _fail(f"error: {e}", 2, group)
    except RuntimeError as e:
        if not group:
            raise
        # A collective whose peer died (gloo/NCCL: connection reset) or a lost coordinator.
        lines = str(e).strip().splitlines() or [type(e).__name__]
        import jax

        _fail(
            f"error: process {jax.process_index()}: the process group broke "
            f"({lines[0]}); another process has probably stopped, see its output",
            1,
            group,
        )


if __name__ == "__main__":
    app.run(main)
