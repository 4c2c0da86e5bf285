"""Repeat-factor sampling and the example order as a pure function of (seed, position).

Repeat factors follow detectron2's ``RepeatFactorTrainingSampler.repeat_factors_from_category_
frequency``: ``f(c)`` = fraction of records showing category ``c``, ``r(c) = max(1, sqrt(t /
f(c)))``, a record's factor is the largest ``r(c)`` over its categories (1 without any). Each
epoch rounds the factors stochastically (integer part plus one more copy with probability equal to
the fractional part) and shuffles the expanded list. Both draws come from a generator seeded by
``(seed, epoch)``, so the global stream of record indices, and the split of each global batch into
per-host shares, depend on nothing else: resuming at batch ``k`` is reading from position
``k * global_batch`` on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np


def repeat_factors(record_categories: Sequence[frozenset[int]], threshold: float) -> np.ndarray:
    """Per-record repeat factors (float32, as detectron2 returns them); all 1 when threshold <= 0."""
    n = len(record_categories)
    if threshold <= 0 or n == 0:
        return np.ones(n, np.float32)
    counts: dict[int, int] = {}
    for cats in record_categories:
        for c in cats:
            counts[c] = counts.get(c, 0) + 1
    cat_rep = {c: max(1.0, math.sqrt(threshold / (k / n))) for c, k in counts.items()}
    return np.asarray(
        [max((cat_rep[c] for c in cats), default=1.0) for cats in record_categories], np.float32
    )


def epoch_indices(factors: np.ndarray, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The record indices of one epoch: stochastic rounding of ``factors``, then a permutation."""
    rng = np.random.default_rng([seed, epoch, 0x5EED])
    whole = np.floor(factors)
    frac = factors - whole
    copies = whole.astype(np.int64) + (rng.random(len(factors)) < frac)
    idx = np.repeat(np.arange(len(factors)), copies)
    if shuffle:
        idx = idx[rng.permutation(len(idx))]
    return idx


class ExampleStream:
    """Global example position -> record index, epoch after epoch (epochs built on demand)."""

    def __init__(self, factors: np.ndarray, seed: int, shuffle: bool = True):
        if len(factors) == 0:
            raise ValueError("no training records to sample from")
        self.factors = np.asarray(factors, np.float32)
        self.seed = int(seed)
        self.shuffle = shuffle
        self._epoch = -1
        self._start = 0  # global position of the first example of self._epoch
        self._indices = np.zeros(0, np.int64)

    def _seek(self, position: int) -> None:
        if position < self._start or self._epoch < 0:
            self._epoch, self._start = 0, 0
            self._indices = epoch_indices(self.factors, self.seed, 0, self.shuffle)
        while position >= self._start + len(self._indices):
            self._start += len(self._indices)
            self._epoch += 1
            self._indices = epoch_indices(self.factors, self.seed, self._epoch, self.shuffle)

    def record_at(self, position: int) -> tuple[int, int]:
        """(record index, epoch) of the example at global ``position``."""
        self._seek(position)
        return int(self._indices[position - self._start]), self._epoch


def host_positions(
    batch_size: int, process_index: int, process_count: int, start_batch: int = 0
) -> Iterator[int]:
    """Global example positions this host reads, batch after batch from ``start_batch``.

    Global batch ``k`` is positions ``[k*B*P, (k+1)*B*P)``; host ``p`` takes the ``p``-th block of
    ``B`` (``B`` per-host batch, ``P`` hosts), matching how the trainer assembles the global batch.
    """
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    k = start_batch
    while True:
        base = (k * process_count + process_index) * batch_size
        yield from range(base, base + batch_size)
        k += 1
