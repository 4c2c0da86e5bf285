"""Training tests compile whole train steps: XLA's slow optimisation passes are switched off for
them (the tests compare runs with each other, never with fixtures, so only speed changes)."""

from __future__ import annotations

import jax
import pytest


@pytest.fixture(autouse=True, scope="package")
def fast_compilation():
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)
