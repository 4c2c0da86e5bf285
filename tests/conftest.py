"""Shared pytest fixtures: where the golden outputs of the original live."""

from __future__ import annotations

import os

import pytest

from ov2seg_jax.parity.paths import fixtures_dir, metadata_dir


@pytest.fixture(scope="session")
def fixtures_root() -> str:
    root = fixtures_dir()
    if not os.path.isdir(root):
        pytest.skip(f"golden fixtures not found at {root} (set OV2SEG_FIXTURES to their folder)")
    return root


@pytest.fixture(scope="session")
def metadata_root() -> str:
    root = metadata_dir()
    if not os.path.isdir(root):
        pytest.skip(f"metadata not found at {root} (set OV2SEG_METADATA to its folder)")
    return root
