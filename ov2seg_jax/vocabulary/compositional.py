"""A deterministic compositional text encoder: a name's embedding is the sum of its words' vectors.

It stands in for CLIP's text encoder where no CLIP weights are available, most notably for the
built-in synthetic dataset, whose categories are compositions ``"<colour> <shape>"``. Because
``"red star"`` is (up to normalisation) ``v(red) + v(star)``, a model that learned to read colour
and shape from ``"red circle"`` and ``"blue star"`` can score the unseen ``"red star"``, which is
what makes open-vocabulary generalisation learnable and measurable on that data.

Definition (version :data:`ENCODER_VERSION`):

* **words** of a name: the name is case-folded and split into runs of letters and digits, so spaces,
  underscores, hyphens and brackets all separate words (``"Bow_(weapon)"`` -> ``bow``, ``weapon``).
  A non-empty name without any letter or digit is one word (its stripped, case-folded text).
* **word vector** ``v(w)`` of dimension ``D``: ``SHAKE-256("ov2seg-compositional-v1\\0" + w)``
  gives ``8 * D`` bytes, read as ``D`` pairs of little-endian ``uint32`` that become standard
  normal numbers by the Box-Muller transform; the vector is then scaled to unit length. Only
  ``hashlib`` and IEEE arithmetic are involved, so the vectors are the same on every machine and
  with any numpy version. Independent words are nearly orthogonal (cosine ~ N(0, 1/D)).
* **name embedding**: ``sum(v(w) for w in words)`` (a repeated word counts each time), scaled to
  unit length.

The classifier has the layout of the CLIP classifiers (``fg_bg_5_10_*_ens.npy``): ``(C, D)``
float32, unit-norm rows, one row per name in the order given. Any name works, seen or not.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence

import numpy as np

ENCODER_VERSION = "compositional-v1"
DEFAULT_DIM = 512
_HASH_PREFIX = b"ov2seg-compositional-v1\x00"
_WORD = re.compile(r"[^\W_]+")


def name_words(name: str) -> tuple[str, ...]:
    """The words of ``name`` (see the module docstring); raises ValueError for an empty name."""
    if not isinstance(name, str):
        raise ValueError(f"a name must be a string, got {type(name).__name__}")
    folded = name.casefold()
    words = tuple(_WORD.findall(folded))
    if words:
        return words
    stripped = folded.strip()
    if not stripped:
        raise ValueError(f"name {name!r} is empty")
    return (stripped,)


@functools.lru_cache(maxsize=4096)
def _word_vector_cached(word: str, dim: int) -> np.ndarray:
    raw = hashlib.shake_256(_HASH_PREFIX + word.encode("utf-8")).digest(8 * dim)
    ints = np.frombuffer(raw, dtype="<u4").astype(np.float64).reshape(dim, 2)
    u1 = (ints[:, 0] + 1.0) / 4294967296.0  # in (0, 1], so the log is finite
    u2 = ints[:, 1] / 4294967296.0  # in [0, 1)
    gauss = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    vec = gauss / np.linalg.norm(gauss)
    vec.setflags(write=False)
    return vec


def _check_dim(dim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    return int(dim)


def word_vector(word: str, dim: int = DEFAULT_DIM) -> np.ndarray:
    """The unit vector ``(dim,)`` float64 of one word, taken as given (no case folding)."""
    if not isinstance(word, str) or not word:
        raise ValueError(f"a word must be a non-empty string, got {word!r}")
    return _word_vector_cached(word, _check_dim(dim)).copy()


def encode_name(name: str, dim: int = DEFAULT_DIM) -> np.ndarray:
    """The unit embedding ``(dim,)`` float32 of one name: normalised sum of its word vectors."""
    dim = _check_dim(dim)
    total = np.zeros(dim, dtype=np.float64)
    for word in name_words(name):
        total += _word_vector_cached(word, dim)
    norm = np.linalg.norm(total)
    if norm < 1e-6:
        # Only possible for contrived dims where word vectors cancel exactly; never silently zero.
        raise ValueError(f"name {name!r}: its word vectors cancel out at dim {dim}")
    return (total / norm).astype(np.float32)


def encode_names(names: Sequence[str], dim: int = DEFAULT_DIM) -> np.ndarray:
    """Text classifier for ``names``: ``(len(names), dim)`` float32, unit rows, in the given order.

    Raises:
        ValueError: naming the entry at fault, for a non-string or empty name, an empty list, a
            bare string instead of a list, or a bad ``dim``.
    """
    if isinstance(names, str):
        raise ValueError(
            f"expected a sequence of names, got the string {names!r} "
            "(use ov2seg_jax.vocabulary.load_vocabulary to parse a comma-separated string)"
        )
    dim = _check_dim(dim)
    rows = []
    for index, name in enumerate(names):
        try:
            rows.append(encode_name(name, dim))
        except ValueError as exc:
            raise ValueError(f"names[{index}]: {exc}") from None
    if not rows:
        raise ValueError("the vocabulary is empty; give at least one name")
    return np.stack(rows)
