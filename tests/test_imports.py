"""Every module of the project imports (catches syntax errors and broken imports everywhere)."""

from __future__ import annotations

import importlib
import os
import pkgutil

import pytest

import configs
import data_prep
import kernels
import ov2seg_jax


def _modules():
    for pkg in (ov2seg_jax, kernels, configs, data_prep):
        yield pkg.__name__
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg.__name__ + "."):
            if not info.name.endswith("__main__"):  # running it would start the CLI
                yield info.name


@pytest.mark.parametrize("name", sorted(set(_modules())))
def test_module_imports(name):
    importlib.import_module(name)


CONFIGS = sorted(
    f[: -len(".py")]
    for f in os.listdir(os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs"))
    if f.endswith(".py") and not f.startswith("_")
)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds_a_model(name):
    from ov2seg_jax.models.ov2seg import build_model

    cfg = importlib.import_module(f"configs.{name}").get_config()
    model = build_model(cfg.model)
    assert model.predictor.num_queries == cfg.model.decoder.num_queries
