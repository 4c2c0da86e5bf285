"""Every module of the project imports (catches syntax errors and broken imports everywhere)."""

from __future__ import annotations

import importlib
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


@pytest.mark.parametrize("name", ["ov2seg_r50_lvvis", "ov2seg_swinb_lvvis", "tiny"])
def test_config_builds_a_model(name):
    from ov2seg_jax.models.ov2seg import build_model

    cfg = importlib.import_module(f"configs.{name}").get_config()
    model = build_model(cfg.model)
    assert model.predictor.num_queries == cfg.model.decoder.num_queries
