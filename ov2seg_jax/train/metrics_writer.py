"""Training logs: a JSON-lines file, TensorBoard event files and a line on stdout.

``metrics.jsonl`` (one object per logged step, ``{"step": k, "loss": ..., ...}``) is the file the
plots are drawn from; the TensorBoard events go to the same folder. Only process 0 writes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping

import jax


class MetricsWriter:
    def __init__(self, directory: str, *, tensorboard: bool = True):
        self.enabled = jax.process_index() == 0
        self.directory = directory
        self._tb = None
        if not self.enabled:
            return
        os.makedirs(directory, exist_ok=True)
        self._jsonl = open(os.path.join(directory, "metrics.jsonl"), "a")
        if tensorboard:
            from flax.metrics.tensorboard import SummaryWriter

            self._tb = SummaryWriter(directory)

    def write(self, step: int, metrics: Mapping[str, float], prefix: str = "") -> None:
        if not self.enabled:
            return
        scalars = {
            f"{prefix}{k}": float(v)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and math.isfinite(float(v))
        }
        self._jsonl.write(json.dumps({"step": int(step), **scalars}) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.scalar(k, v, step)
            self._tb.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str) -> list[dict]:
    """The records of a ``metrics.jsonl`` file, in order (a torn last line is skipped)."""
    records = []
    if not os.path.exists(path):
        return records
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records
