"""Defaults live in configs/ only: every config carries every field, a missing one is named, and no
module falls back to a default of its own with ``.get(key, default)``."""

from __future__ import annotations

import ast
import importlib
import pathlib
import re
import subprocess
import sys

import pytest

from configs import ov2seg_r50_lvvis
from ov2seg_jax.config_fields import MissingConfigField, check_complete, from_section
from ov2seg_jax.data import augment
from ov2seg_jax.data.pipeline import lsj_config
from ov2seg_jax.losses.config import CriterionConfig
from ov2seg_jax.models.ov2seg import build_model

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.py") if p.stem != "__init__")


def _config(name: str):
    return importlib.import_module(f"configs.{name}").get_config()


def test_the_configs_are_found():
    assert {"tiny", "synthetic", "ov2seg_r50_lvvis", "ov2seg_swinb_lvis"} <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_carries_every_field(name):
    """Each config has the reference's fields and builds the model, the loss settings and the
    jitter settings from its sections (building, not initialising: no weights are made)."""
    config = _config(name)
    check_complete(config, ov2seg_r50_lvvis.get_config())
    model = build_model(config.model)
    assert model.predictor.num_queries == config.model.decoder.num_queries
    assert model.pixel_decoder.msda_implementation == config.model.pixel_decoder.msda_implementation
    loss = CriterionConfig.from_config(config.loss)
    assert loss.class_loss_factor == config.loss.class_loss_factor
    assert lsj_config(config.data).pad_value == config.data.pad_value
    assert config.default_mode in ("predict", "all")


def test_score_threshold_is_the_configs():
    """The one value that used to differ (the code's fallback was 0.0)."""
    assert ov2seg_r50_lvvis.get_config().predict.score_threshold == 0.3


@pytest.mark.parametrize(
    "section, field",
    [
        ("predict", "score_threshold"),
        ("train", "init_image_size"),
        ("data", "pad_value"),
        ("distributed", "fsdp"),
        ("model.pixel_decoder", "msda_implementation"),
    ],
)
def test_a_config_missing_a_field_fails_naming_it(section, field):
    config = _config("tiny")
    owner = config
    for part in section.split("."):
        owner = owner[part]
    del owner[field]
    with pytest.raises(MissingConfigField, match=rf"config\.{section}\.{field}\b"):
        check_complete(config, ov2seg_r50_lvvis.get_config())


def test_the_entry_point_names_a_missing_field_and_exits_2(tmp_path):
    (tmp_path / "broken.py").write_text(
        "from configs import tiny\n\n\ndef get_config():\n    c = tiny.get_config()\n"
        '    del c.predict["score_threshold"]\n    return c\n'
    )
    cmd = [sys.executable, "-m", "ov2seg_jax.main", "--config", str(tmp_path / "broken.py")]
    cmd += ["--workdir", str(tmp_path / "run"), "--mode", "predict"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "config.predict.score_threshold" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_readers_name_the_missing_field():
    """The readers check too, for configs that do not pass through the entry point (a model
    config saved with a checkpoint, a test's own section)."""
    config = _config("ov2seg_swinb_lvvis")
    del config.model.backbone["drop_path_rate"]
    with pytest.raises(MissingConfigField, match=r"config\.model\.backbone\.drop_path_rate"):
        build_model(config.model)
    config = _config("tiny")
    del config.model.pixel_decoder["msda_implementation"]
    with pytest.raises(
        MissingConfigField, match=r"config\.model\.pixel_decoder\.msda_implementation"
    ):
        build_model(config.model)
    data = _config("tiny").data
    del data["interpolation"], data["random_flip"]
    with pytest.raises(
        MissingConfigField, match=r"config\.data\.random_flip, config\.data\.interpolation"
    ):
        lsj_config(data)
    # A swin section is not compared field by field with the reference's resnet one.
    check_complete(_config("ov2seg_swinb_lvvis"), ov2seg_r50_lvvis.get_config())


def test_from_section_reads_same_named_fields_and_overrides():
    data = ov2seg_r50_lvvis.get_config().data
    cfg = from_section(augment.LSJConfig, data, "config.data", image_size=32)
    assert (cfg.image_size, cfg.min_scale, cfg.interpolation) == (32, 0.1, "bilinear")
    with pytest.raises(TypeError, match="size"):
        from_section(augment.LSJConfig, data, "config.data", size=32)


# What holds a config: a name (or attribute) spelled like one, a parameter annotated
# ``ConfigDict``, and any local name bound from an expression rooted at one of those.
CONFIG_NAME = re.compile(r"^(config|cfg|[a-z_]+_cfg|[a-z_]+_config|section)$")


def _chain(expr: ast.expr) -> tuple[str | None, list[str]]:
    """(root name, every name and attribute along ``a.b[c].d``)."""
    names = []
    while isinstance(expr, (ast.Attribute, ast.Subscript, ast.Call)):
        if isinstance(expr, ast.Attribute):
            names.append(expr.attr)
        expr = expr.func if isinstance(expr, ast.Call) else expr.value
    root = expr.id if isinstance(expr, ast.Name) else None
    return root, [*names, root] if root else names


def _config_names(fn: ast.AST) -> set[str]:
    args = fn.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    names = {
        a.arg
        for a in params
        if CONFIG_NAME.match(a.arg)
        or (a.annotation is not None and "ConfigDict" in ast.unparse(a.annotation))
    }
    for _ in range(3):  # bindings of bindings (pd = cfg.model; dec = pd.decoder)
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name) and _holds_config(node.value, names):
                    names.add(target.id)
    return names


def _holds_config(expr: ast.expr, names: set[str]) -> bool:
    root, chain = _chain(expr)
    return root in names or any(CONFIG_NAME.match(n) for n in chain)


def _default_gets(path: pathlib.Path, root: pathlib.Path = ROOT) -> list[str]:
    """``x.get(key, default)`` / ``x.setdefault`` calls in ``path`` whose ``x`` holds a config."""
    tree = ast.parse(path.read_text(), str(path))
    found = {}
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        names = _config_names(fn)
        for node in ast.walk(fn):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in ("get", "setdefault"):
                continue
            if len(node.args) < 2 and not any(k.arg == "default" for k in node.keywords):
                continue
            if _holds_config(node.func.value, names):
                where = f"{path.relative_to(root)}:{node.lineno}"
                found[where] = f"{where}: {ast.unparse(node)}"
    return sorted(found.values())


def test_no_module_reads_a_config_default():
    """No ``config.x.get(key, default)`` under ov2seg_jax/: a config field is read as
    ``section.field`` (defaults live in configs/); data dicts may use ``.get`` freely."""
    found = [hit for p in sorted((ROOT / "ov2seg_jax").rglob("*.py")) for hit in _default_gets(p)]
    assert not found, "config defaults read in code:\n" + "\n".join(found)


def test_the_scan_finds_a_config_default(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(config):\n    return config.train.get('num_steps', 10)\n")
    hits = _default_gets(bad, tmp_path)
    assert len(hits) == 1 and "config.train.get('num_steps', 10)" in hits[0]


@pytest.mark.parametrize(
    "source",
    [
        "def f(cfg):\n    pd = cfg.model\n    dec = pd.decoder\n    return dec.get('x', 1)\n",
        "def f(c: ml_collections.ConfigDict):\n    return c.setdefault('x', 1)\n",
        "class A:\n    def f(self):\n        return self.config.data.get('x', default=2)\n",
    ],
)
def test_the_scan_follows_config_holders(tmp_path, source):
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    assert len(_default_gets(bad, tmp_path)) == 1


def test_the_scan_leaves_data_alone(tmp_path):
    ok = tmp_path / "ok.py"
    ok.write_text("def f(record, counts):\n    return record.get('id', 0) + counts.get(1, 0)\n")
    assert _default_gets(ok, tmp_path) == []
