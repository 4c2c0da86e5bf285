"""Tests for the compositional text encoder (ov2seg_jax.vocabulary.compositional)."""

from __future__ import annotations

import hashlib
import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ov2seg_jax.vocabulary.compositional import (
    encode_name,
    encode_names,
    name_words,
    word_vector,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
COLOURS = ("red", "green", "blue", "yellow", "magenta", "cyan", "orange", "white")
SHAPES = ("circle", "square", "triangle", "star", "hexagon", "diamond", "cross", "ring")
NAMES = [f"{c} {s}" for c in COLOURS for s in SHAPES]


def _definition(word: str, dim: int) -> list[float]:
    """The word vector written out from the module's documented definition, in plain Python."""
    raw = hashlib.shake_256(b"ov2seg-compositional-v1\x00" + word.encode()).digest(8 * dim)
    values = []
    for k in range(dim):
        a = int.from_bytes(raw[8 * k : 8 * k + 4], "little")
        b = int.from_bytes(raw[8 * k + 4 : 8 * k + 8], "little")
        u1, u2 = (a + 1) / 2**32, b / 2**32
        values.append(math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2))
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def test_word_vector_matches_the_documented_definition():
    for word, dim in (("circle", 8), ("red", 512), ("zebra-like", 3)):
        np.testing.assert_allclose(word_vector(word, dim), _definition(word, dim), atol=1e-12)


def test_word_vector_values_are_pinned():
    # Pinned once; a change means every classifier built with this encoder changes.
    np.testing.assert_allclose(
        word_vector("red", 512)[:4], [0.01725769, 0.05916613, 0.02092689, 0.00506407], atol=1e-8
    )
    np.testing.assert_allclose(
        word_vector("circle", 8),
        [0.03371254, 0.00274707, 0.51214534, 0.16845929, -0.14856875, -0.13253797, -0.7943348,
         -0.19384987],
        atol=1e-8,
    )  # fmt: skip


def test_layout_unit_rows_and_order():
    out = encode_names(NAMES)
    assert out.shape == (64, 512) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    perm = np.random.default_rng(0).permutation(64)
    np.testing.assert_array_equal(encode_names([NAMES[i] for i in perm]), out[perm])
    for i in (0, 17, 63):
        np.testing.assert_array_equal(out[i], encode_name(NAMES[i]))
    assert encode_names(["a b"], dim=7).shape == (1, 7)


def test_name_is_the_normalised_sum_of_its_words():
    expected = word_vector("red", 64) + word_vector("star", 64)
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(encode_names(["red star"], dim=64)[0], expected, atol=1e-6)
    # A repeated word counts twice: red red star = (2 r + s) / |2 r + s|.
    twice = 2 * word_vector("red", 64) + word_vector("star", 64)
    np.testing.assert_allclose(
        encode_name("red red star", 64), twice / np.linalg.norm(twice), atol=1e-6
    )
    # One word: its own vector.
    np.testing.assert_allclose(encode_name("Zebra", 64), word_vector("zebra", 64), atol=1e-6)


def test_tokenisation():
    assert name_words("Red_Circle") == ("red", "circle")
    assert name_words("  red   circle ") == ("red", "circle")
    assert name_words("bow_(weapon)") == ("bow", "weapon")
    assert name_words("bow-tie") == ("bow", "tie")
    assert name_words("+++") == ("+++",)
    a = encode_names(["red circle", "Red_Circle", "RED  circle"])
    np.testing.assert_array_equal(a[0], a[1])
    np.testing.assert_array_equal(a[0], a[2])


def test_sharing_a_word_gives_positive_cosine():
    emb = encode_names(NAMES).astype(np.float64)
    cos = emb @ emb.T
    shared, unrelated = [], []
    for i, j in itertools.combinations(range(64), 2):
        wi, wj = set(NAMES[i].split()), set(NAMES[j].split())
        (shared if wi & wj else unrelated).append(cos[i, j])
    # Two unit words a+b, a+c: cosine (1 + a.b + a.c + b.c) / (|a+b||a+c|) ~ 0.5.
    assert min(shared) > 0.35, min(shared)
    assert max(shared) < 0.65, max(shared)
    assert max(abs(c) for c in unrelated) < 0.2, max(abs(c) for c in unrelated)


def test_unknown_words_are_near_orthogonal():
    words = [f"word{k}" for k in range(200)]
    emb = encode_names(words).astype(np.float64)
    cos = emb @ emb.T - np.eye(200)
    # Independent random unit vectors in 512-D: cosine ~ N(0, 1/512), std 0.044.
    assert np.abs(cos).max() < 0.25
    assert abs(float(np.std(cos[np.triu_indices(200, 1)])) - 512**-0.5) < 0.005


def test_deterministic_across_processes():
    code = (
        "from ov2seg_jax.vocabulary.compositional import encode_names;"
        "import sys; sys.stdout.buffer.write(encode_names(['red circle', 'okapi']).tobytes())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    ).stdout
    np.testing.assert_array_equal(
        np.frombuffer(out, dtype=np.float32).reshape(2, 512),
        encode_names(["red circle", "okapi"]),
    )


@pytest.mark.parametrize(
    ("names", "dim", "message"),
    [
        (["red", ""], 512, r"names\[1\].*empty"),
        (["red", "  "], 512, r"names\[1\].*empty"),
        (["red", 3], 512, r"names\[1\].*string"),
        ([], 512, "empty"),
        ("red,circle", 512, "string"),
        (["red"], 0, "dim"),
        (["red"], 2.5, "dim"),
    ],
)
def test_bad_input_is_named(names, dim, message):
    with pytest.raises(ValueError, match=message):
        encode_names(names, dim=dim)
