"""Multi-host start-up through ``jax.distributed`` from ``config.distributed``."""

from __future__ import annotations

import jax
import ml_collections


def initialize(dist: ml_collections.ConfigDict) -> None:
    """Join the process group when ``num_processes > 1`` (a no-op for a single process).

    ``coordinator_address`` (host:port of process 0), ``num_processes`` and ``process_id`` may be
    left empty/0 on platforms where JAX discovers them (Cloud TPU, SLURM); set
    ``auto_detect=True`` there.
    """
    if dist.auto_detect:
        jax.distributed.initialize()
        return
    if dist.num_processes <= 1:
        return
    if not dist.coordinator_address:
        raise ValueError(
            "config.distributed.coordinator_address is required when num_processes > 1"
        )
    if not 0 <= dist.process_id < dist.num_processes:
        raise ValueError(
            f"config.distributed.process_id={dist.process_id} is outside "
            f"[0, num_processes={dist.num_processes})"
        )
    jax.distributed.initialize(
        coordinator_address=dist.coordinator_address,
        num_processes=dist.num_processes,
        process_id=dist.process_id,
    )
