"""Device mesh and shardings: data parallel over every device, optional FSDP-style parameters.

One mesh axis, ``data``, spans all devices of all hosts. Batches are split along their leading
axis. Parameters (and the optimizer state that mirrors them) are replicated, or, with ``fsdp``,
each array of at least ``fsdp_min_size`` numbers is split along its largest axis that divides by
the device count; XLA inserts the gathers. Either way the computation is the same global-batch
computation, so results do not depend on the number of devices.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def fsdp_spec(shape: tuple[int, ...], num_devices: int, min_size: int) -> PartitionSpec:
    """Split the largest axis divisible by ``num_devices`` of a large enough array; else replicate."""
    if num_devices == 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
        return PartitionSpec()
    for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
        if shape[axis] % num_devices == 0:
            spec = [None] * len(shape)
            spec[axis] = DATA_AXIS
            return PartitionSpec(*spec)
    return PartitionSpec()


def state_shardings(mesh: Mesh, abstract_state, *, fsdp: bool, fsdp_min_size: int = 2**18):
    """A sharding for every leaf of ``abstract_state`` (a pytree of ShapeDtypeStructs)."""
    n = mesh.devices.size

    def leaf(x):
        if not fsdp or not hasattr(x, "shape"):
            return replicated(mesh)
        return NamedSharding(mesh, fsdp_spec(tuple(x.shape), n, fsdp_min_size))

    return jax.tree.map(leaf, abstract_state)


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This host's share of a batch -> global arrays sharded along the batch axis.

    With one process this is a plain ``device_put``; with several, each host passes its own rows
    and the global batch is their concatenation in process order.
    """
    sharding = batch_sharding(mesh)
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local.items()
    }
