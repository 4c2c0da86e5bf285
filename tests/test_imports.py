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


def _project_imports() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its source (function bodies too)."""
    import ast

    root = os.path.dirname(ov2seg_jax.__file__)
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), os.path.dirname(root))
                module = rel[: -len(".py")].replace(os.sep, ".").removesuffix(".__init__")
                files[module] = os.path.join(folder, name)
    graph = {}
    for module, path in files.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in files else node.module)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[module] = {d for d in deps if d in files and d != module}
    return graph


def test_no_import_cycles():
    """Imports run one way (e.g. main -> end_to_end -> modes), deferred imports included."""
    graph = _project_imports()
    assert "ov2seg_jax.modes" in graph["ov2seg_jax.end_to_end"]
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep) :] + [dep] if dep in path else [module, dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, path + [dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
