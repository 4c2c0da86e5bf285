"""Cached window programs: equal to the jitted model, read back instead of lowered, keyed by what
makes them valid, and a damaged file is replaced."""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

from configs import tiny
from ov2seg_jax import checkpoint
from ov2seg_jax.convert.convert_ov2seg import abstract_variables
from ov2seg_jax.inference.predictor import jitted_forward
from ov2seg_jax.inference.program_cache import (
    ProgramCache,
    cache_folder,
    cached_variable_shapes,
    program_key,
)
from ov2seg_jax.models.ov2seg import build_model
from tests.inference.conftest import write_tiny_model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    cfg = tiny.get_config().model
    directory = write_tiny_model(str(tmp_path_factory.mktemp("model")))
    variables = checkpoint.load_model(directory, abstract_variables(cfg))
    rng = np.random.default_rng(0)
    images = rng.standard_normal((2, 64, 96, 3)).astype(np.float32)
    classifier = rng.standard_normal((3, cfg.decoder.text_embed_dim)).astype(np.float32)
    forward = jitted_forward(build_model(cfg), "highest")
    want = {k: np.asarray(v) for k, v in forward(variables, images, classifier).items()}
    return cfg, forward, variables, images, classifier, want


def _run(cache, variables, images, classifier):
    return {k: np.asarray(v) for k, v in cache(variables, images, classifier).items()}


def _assert_equal_outputs(got, want):
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-5, err_msg=key)


def test_a_program_is_lowered_once_then_read_back(tiny_model, tmp_path):
    cfg, forward, variables, images, classifier, want = tiny_model
    first = ProgramCache(str(tmp_path), forward)
    _assert_equal_outputs(_run(first, variables, images, classifier), want)
    name = ProgramCache.file_name(images, classifier)
    assert first.exported_here == [name] and os.path.isfile(tmp_path / name)

    second = ProgramCache(str(tmp_path), forward)  # as a new process would
    _assert_equal_outputs(_run(second, variables, images, classifier), want)
    assert second.exported_here == []  # read back, not lowered

    shapes = cached_variable_shapes(str(tmp_path))
    expected = abstract_variables(cfg)
    assert jax.tree_util.tree_structure(shapes) == jax.tree_util.tree_structure(expected)
    leaves = zip(
        jax.tree_util.tree_leaves(shapes), jax.tree_util.tree_leaves(expected), strict=True
    )
    for got, exp in leaves:
        assert (got.shape, got.dtype) == (exp.shape, exp.dtype)


def test_a_damaged_or_mismatching_program_is_lowered_again(tiny_model, tmp_path):
    cfg, forward, variables, images, classifier, want = tiny_model
    name = ProgramCache.file_name(images, classifier)
    (tmp_path / name).write_bytes(b"not a program")
    assert cached_variable_shapes(str(tmp_path)) is None
    cache = ProgramCache(str(tmp_path), forward)
    _assert_equal_outputs(_run(cache, variables, images, classifier), want)
    assert cache.exported_here == [name]
    # a file of another window shape under this name (as if renamed): lowered again, not trusted
    other = images[:1]
    ProgramCache(str(tmp_path / "other"), forward)(variables, other, classifier)
    os.replace(tmp_path / "other" / ProgramCache.file_name(other, classifier), tmp_path / name)
    cache = ProgramCache(str(tmp_path), forward)
    _assert_equal_outputs(_run(cache, variables, images, classifier), want)
    assert cache.exported_here == [name]


def test_the_key_names_the_model_and_precision(tmp_path):
    cfg = tiny.get_config().model
    key = program_key(cfg, "highest")
    assert key == program_key(tiny.get_config().model, "highest")
    assert key != program_key(cfg, "default")
    other = tiny.get_config().model
    other.decoder.num_layers += 1
    assert key != program_key(other, "highest")
    before = jax.config.jax_compilation_cache_dir
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        assert cache_folder(cfg, "highest") is None  # off when jax's cache is off
        jax.config.update("jax_compilation_cache_dir", str(tmp_path))
        assert cache_folder(cfg, "highest") == os.path.join(str(tmp_path), "programs", key)
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
