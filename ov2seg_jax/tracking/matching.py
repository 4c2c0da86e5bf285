"""Frame-to-frame query matching by embedding similarity (the original's ``match_from_embds``).

Each frame's decoder queries are matched to the tracker's memory slots with a linear assignment on
``cost[s, q] = 1 - cos(memory[s], current[q])``: rows are memory slots (the targets, in frame 0's
query order), columns are the current frame's queries. The assignment is solved on the host with
``scipy.optimize.linear_sum_assignment``, as in the original, and the answer is given as a
permutation ``indices`` with ``indices[s]`` = the current query placed in slot ``s``; gathering
``current[indices]`` aligns the current frame to the memory.

Everything is float32 numpy, as the original runs this step on CPU tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

# Maps a (slots, queries) cost matrix to ``indices`` (slots,): the query assigned to each slot.
AssignmentSolver = Callable[[np.ndarray], np.ndarray]


class Match(NamedTuple):
    """Result of matching one frame to the memory.

    ``indices`` (S,) int64: ``indices[s]`` is the current query placed in memory slot ``s``.
    ``cost`` (S, Q) float32: the cost matrix exactly as solved (rows = slots, columns = queries).
    """

    indices: np.ndarray
    cost: np.ndarray


def _as_embeddings(name: str, x) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (queries, dim), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"{name} must have at least one query and one feature, got shape {arr.shape}"
        )
    return arr


def l2_normalize_rows(x: np.ndarray) -> np.ndarray:
    """Divide each row of ``x`` (N, D) by its L2 norm (float32, no epsilon, like the original)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.sqrt(np.sum(x * x, axis=1, dtype=np.float32, keepdims=True))
    with np.errstate(divide="ignore", invalid="ignore"):  # zero rows -> NaN, reported by the solver
        return (x / norms).astype(np.float32)


def embedding_cost(memory, current) -> np.ndarray:
    """Cost matrix (S, Q) float32: ``1 - cosine(memory[s], current[q])``.

    ``memory``: (S, D) the tracker's slot embeddings; ``current``: (Q, D) this frame's query
    embeddings. Neither needs to be normalised.
    """
    memory = _as_embeddings("memory", memory)
    current = _as_embeddings("current", current)
    if memory.shape[1] != current.shape[1]:
        raise ValueError(
            f"embedding widths differ: memory has shape {memory.shape}, current has shape "
            f"{current.shape}"
        )
    cos = l2_normalize_rows(memory) @ l2_normalize_rows(current).T
    return (np.float32(1.0) - cos).astype(np.float32)


def solve_assignment(cost: np.ndarray) -> np.ndarray:
    """Minimum-cost assignment of a square (S, S) cost matrix; returns ``indices`` (S,) int64."""
    cost = np.asarray(cost)
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1]:
        raise ValueError(f"cost must be a square (slots, queries) matrix, got shape {cost.shape}")
    if not np.all(np.isfinite(cost)):
        raise ValueError("cost matrix has non-finite entries (an embedding with zero norm or NaN?)")
    rows, cols = linear_sum_assignment(cost)
    # For a square matrix scipy returns rows = 0..S-1 in order; keep only the column permutation.
    indices = np.empty(cost.shape[0], dtype=np.int64)
    indices[rows] = cols
    return indices


def assignment_total(cost: np.ndarray, indices: np.ndarray) -> float:
    """Total cost (float64) of giving slot ``s`` the query ``indices[s]`` under ``cost`` (S, Q)."""
    cost = np.asarray(cost, dtype=np.float64)
    indices = np.asarray(indices, dtype=np.int64)
    return float(np.sum(cost[np.arange(cost.shape[0]), indices]))


def match_embeddings(memory, current, solver: AssignmentSolver | None = None) -> Match:
    """Match the current frame's queries (Q, D) to the memory slots (Q, D).

    ``solver`` replaces scipy's assignment (it receives the (Q, Q) cost matrix and returns the
    per-slot query indices); the parity checks use it to replay the original's tie-breaking.
    """
    memory = _as_embeddings("memory", memory)
    current = _as_embeddings("current", current)
    if memory.shape != current.shape:
        raise ValueError(
            f"memory and current embeddings must have the same shape (queries, dim): memory "
            f"{memory.shape}, current {current.shape}"
        )
    cost = embedding_cost(memory, current)
    indices = np.asarray((solver or solve_assignment)(cost), dtype=np.int64)
    q = current.shape[0]
    if indices.shape != (q,) or not np.array_equal(np.sort(indices), np.arange(q)):
        raise ValueError(
            f"the assignment solver must return a permutation of {q} queries, got shape "
            f"{indices.shape}"
        )
    return Match(indices, cost)
