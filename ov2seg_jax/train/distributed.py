"""Process groups: every process of a run joins before anything touches a JAX backend.

The entry point calls :func:`start` with ``config.distributed`` before any mode runs, for every
mode (train, evaluate, predict, all): JAX only accepts a process group before its first
computation. Two ways to name the group:

* explicit: ``coordinator_address`` (``host:port`` of process 0, the same on every process),
  ``num_processes`` and this process's ``process_id``;
* ``auto_detect=True``: JAX reads them from the cluster (Cloud TPU pod slices, SLURM, Open MPI,
  Kubernetes); a ``coordinator_address`` given too takes precedence over the detected one.

A problem with these settings, a coordinator that cannot be reached within ``init_timeout_s``,
or a global batch that does not divide over the devices is a :class:`DistributedError`: one line
naming the field at fault. Once running, a process that stops sending heartbeats for
``heartbeat_timeout_s`` ends the others (JAX's coordination service), and a collective whose peer
died fails at once; the entry point turns either into one line (see ``ov2seg_jax/main.py``).

On one machine, ``scripts/launch_local.py -n N -- <command>`` starts a group of N local processes.
"""

from __future__ import annotations

import socket
import time

import ml_collections
import numpy as np


class DistributedError(ValueError):
    """Settings of the process group (or of the global batch) that cannot work."""


def _port(address: str) -> int | None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return int(port)


def check_settings(dist: ml_collections.ConfigDict) -> None:
    """Raise :class:`DistributedError` for settings that cannot form a group (no JAX call)."""
    n, i, address = int(dist.num_processes), int(dist.process_id), str(dist.coordinator_address)
    if dist.auto_detect:
        if address and _port(address) is None:
            raise DistributedError(
                f"config.distributed.coordinator_address={address!r} is not HOST:PORT"
            )
        return
    if n < 1:
        raise DistributedError(f"config.distributed.num_processes={n} must be at least 1")
    if not 0 <= i < n:
        raise DistributedError(
            f"config.distributed.process_id={i} is outside [0, {n}) "
            f"(config.distributed.num_processes={n})"
        )
    if n == 1:
        return
    if not address:
        raise DistributedError(
            f"config.distributed.num_processes={n} needs config.distributed.coordinator_address="
            "HOST:PORT (process 0's address, the same on every process), or "
            "config.distributed.auto_detect=True on Cloud TPU, SLURM, Open MPI or Kubernetes"
        )
    if _port(address) is None:
        raise DistributedError(
            f"config.distributed.coordinator_address={address!r} is not HOST:PORT"
        )


def wait_for_coordinator(address: str, timeout_s: float) -> None:
    """Return once ``address`` (HOST:PORT) accepts TCP connections; DistributedError after
    ``timeout_s``. JAX itself would abort the process (no Python error) when its connection
    times out, so the processes other than 0 check that the coordinator is there first."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=2.0):
                return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise DistributedError(
                    f"the coordinator {address} (config.distributed.coordinator_address) could "
                    f"not be reached within config.distributed.init_timeout_s={timeout_s:g} s "
                    f"({e.strerror or e}): is process 0 running, and is its address reachable "
                    "from this host?"
                ) from e
        time.sleep(0.25)


def start(dist: ml_collections.ConfigDict) -> None:
    """Join the process group described by ``dist`` (nothing to do for a single process).

    Must run before any JAX computation or device query of this process.
    """
    check_settings(dist)
    if not dist.auto_detect and int(dist.num_processes) == 1:
        return
    import jax

    if not dist.auto_detect and int(dist.process_id) != 0:
        wait_for_coordinator(dist.coordinator_address, float(dist.init_timeout_s))
    timeouts = dict(
        initialization_timeout=int(dist.init_timeout_s),
        heartbeat_timeout_seconds=int(dist.heartbeat_timeout_s),
        shutdown_timeout_seconds=int(dist.shutdown_timeout_s),
    )
    if dist.auto_detect:
        where = "the cluster's coordinator"
        kwargs = dict(coordinator_address=dist.coordinator_address or None)
    else:
        where = f"the coordinator {dist.coordinator_address}"
        kwargs = dict(
            coordinator_address=dist.coordinator_address,
            num_processes=int(dist.num_processes),
            process_id=int(dist.process_id),
        )
    try:
        jax.distributed.initialize(**kwargs, **timeouts)
    except ValueError as e:  # auto-detection found no cluster, or it gave inconsistent values
        raise DistributedError(
            f"config.distributed.auto_detect=True: {e} (no Cloud TPU, SLURM, Open MPI or "
            "Kubernetes environment was found; set coordinator_address, num_processes and "
            "process_id instead)"
        ) from e
    except RuntimeError as e:  # connect() timed out or was refused (JaxRuntimeError)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DistributedError(
            f"could not join the process group through {where} within "
            f"config.distributed.init_timeout_s={int(dist.init_timeout_s)} s: are all "
            f"{dist.num_processes if not dist.auto_detect else ''} processes started, is process "
            f"0 running and is its address reachable from this host? ({first})"
        ) from e


def check_global_batch(batch_size: int) -> None:
    """The global batch must split evenly over the devices (and so over the hosts)."""
    import jax

    n_dev, n_proc = jax.device_count(), jax.process_count()
    if batch_size % n_dev:
        raise DistributedError(
            f"config.train.batch_size={batch_size} (the global batch) does not divide over the "
            f"{n_dev} devices of {n_proc} process(es); use a multiple of {n_dev}"
        )


def is_primary() -> bool:
    """Whether this is process 0, the one that writes logs, plots and summaries."""
    import jax

    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process has reached ``name`` (nothing to do for one process)."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def broadcast_floats(values: np.ndarray | None, size: int) -> np.ndarray:
    """Process 0's ``values`` (float64, ``size`` numbers) on every process."""
    import jax

    if jax.process_count() == 1:
        return np.asarray(values, np.float64)
    from jax.experimental import multihost_utils

    local = np.zeros(size, np.float64) if values is None else np.asarray(values, np.float64)
    bits = multihost_utils.broadcast_one_to_all(local.view(np.uint32))  # exact, also without x64
    return np.asarray(bits, np.uint32).view(np.float64)


def host_copy(tree):
    """A numpy copy of a pytree of global arrays on every process (all processes call it)."""
    import jax

    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    def one(x):
        if getattr(x, "is_fully_replicated", True):
            return np.asarray(jax.device_get(x))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(one, tree)
