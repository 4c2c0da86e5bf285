"""Starting real process groups on localhost for the tests: CPU devices, gloo collectives."""

from __future__ import annotations

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from launch_local import free_port, group_flags, process_env  # noqa: E402

CONFIG = os.path.join(ROOT, "tests", "multihost", "tiny_synthetic.py")
MAIN = [sys.executable, "-m", "ov2seg_jax.main"]
# Records each host's sample ids, then runs the entry point (see record_shares.py).
RECORDING_MAIN = [sys.executable, os.path.join(ROOT, "tests", "multihost", "record_shares.py")]


def env(devices: int, **extra: str) -> dict:
    """A child's environment: ``devices`` CPU devices, this tree first on the path, fast compiles
    (the tests compare runs with each other, so XLA's slow optimisations only cost time)."""
    e = process_env(devices, "cpu")
    e["PYTHONPATH"] = os.pathsep.join([ROOT, e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    e["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
    e["TF_CPP_MIN_LOG_LEVEL"] = "3"
    e.update(extra)
    return e


def data_args(data_root: str) -> list[str]:
    """The config's data paths pointed at a synthetic dataset built once for the module."""
    return [
        "--config.data.dataset=lvvis_format",  # the folder layout (the config's default is TFDS)
        f"--config.data.root={data_root}",
        "--config.evaluate.dataset=",
        f"--config.classifier.path={data_root}/text_classifier.npy",
        f"--config.evaluate.dataset_json={data_root}/val/val_instances.json",
        f"--config.evaluate.image_root={data_root}/val/JPEGImages",
        f"--config.predict.vocabulary={data_root}/categories.txt",
    ]


def start(command: list[str], log: str, devices: int, **extra: str) -> subprocess.Popen:
    """Start one process; its stdout and stderr go to ``log``.out / ``log``.err."""
    out, err = open(log + ".out", "w"), open(log + ".err", "w")
    return subprocess.Popen(command, cwd=ROOT, env=env(devices, **extra), stdout=out, stderr=err)


def start_group(
    command: list[str], log: str, n: int = 2, devices: int = 2, **extra: str
) -> list[subprocess.Popen]:
    """``n`` processes of one group (the flags scripts/launch_local.py gives), logs ``log``.I."""
    port = free_port()
    return [
        start([*command, *group_flags(port, n, i)], f"{log}.{i}", devices, **extra)
        for i in range(n)
    ]


def wait(procs: list[subprocess.Popen], timeout: float) -> list[int]:
    """Exit statuses; processes still running after ``timeout`` s are killed (status None)."""
    deadline = time.monotonic() + timeout
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            codes.append(None)
    return codes


def tail(log: str, n: int = 3000) -> str:
    with open(log + ".err") as f:
        return f.read()[-n:]
