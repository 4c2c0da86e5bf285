"""The one entry point: ``python -m ov2seg_jax.main --config configs/X.py --workdir DIR --mode M``.

Flags only: the work is done by one function per mode, ``MODES[mode](config, workdir)``: the
modes of :mod:`ov2seg_jax.modes` and ``all``, which runs several of them
(:mod:`ov2seg_jax.end_to_end`). Any config field can be overridden with ``--config.a.b=value``.
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

MODES = {**modes.MODES, "all": run_end_to_end}

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and outputs.")
_MODE = flags.DEFINE_enum(
    "mode", None, sorted(MODES), "What to run (default: the config's default_mode)."
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax logs every file operation at INFO
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    workdir = os.path.abspath(_WORKDIR.value)
    os.makedirs(workdir, exist_ok=True)
    try:
        config = modes.expand_workdir(_CONFIG.value, workdir)
        check_complete(config, ov2seg_r50_lvvis.get_config())
        enable_compilation_cache(config.compilation_cache_dir)
        MODES[_MODE.value or config.default_mode](config, workdir)
    except (modes.UserError, MissingConfigField) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
