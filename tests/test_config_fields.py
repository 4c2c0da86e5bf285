"""Defaults live in configs/ only: every config carries every field, a missing one is named, and no
module falls back to a default of its own with ``.get(key, default)``."""

from __future__ import annotations

import ast
import importlib
import pathlib
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


# Receivers of ``.get(key, default)`` in ov2seg_jax/ that are data, not configs: JSON records read
# from datasets and results, counters, module-level lookup tables, the environment.
NOT_CONFIGS = {
    "annotation",  # a dataset annotation (JSON)
    "by_owner",  # annotations grouped by image/video
    "f.by_owner",
    "by_video",
    "c",  # a category record (JSON)
    "m",  # an image/video record (JSON)
    "v",  # a video record of a submission (JSON)
    "gt",  # a ground-truth JSON
    "gt.pair_tracks",
    "counts",  # counters
    "entry",  # a fixture's JSON entry
    "manifest",  # a fixture's manifest (JSON)
    "notes",
    "tols",
    "ours_w",
    "info",  # a transformers loading report
    "variables",  # a variables tree ({'params', 'frozen'})
    "ready",  # a queue (get(timeout=...))
    "os.environ",
    "_ALIASES",
    "a",  # a dataset annotation written into a TFDS record (JSON)
    "_BACKEND_PLATFORM",  # a module-level lookup table
    "e.get('check') or {}",  # the init fixture's JSON records
    "theory",
    "json.load(f)",
    "rel",
    "meta['weights']",  # the training-step fixture's JSON metadata
    "meta['config']",
    "case.meta['weights']",
    "_DERIVED_DEFAULTS",  # a module-level lookup table
    "pieces",  # a dict of lists being filled
    "node",  # a nested dict being filled (checkpoint key tree)
}


def _default_gets(path: pathlib.Path, root: pathlib.Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ("get", "setdefault"):
            continue
        if len(node.args) < 2 and not any(k.arg == "default" for k in node.keywords):
            continue
        receiver = ast.unparse(node.func.value)
        if receiver not in NOT_CONFIGS:
            found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_reads_a_config_default():
    """Grep-style: no ``x.get(key, default)`` under ov2seg_jax/ unless ``x`` is listed above as
    data; a config field is read as ``section.field`` (defaults live in configs/)."""
    found = [hit for p in sorted((ROOT / "ov2seg_jax").rglob("*.py")) for hit in _default_gets(p)]
    assert not found, "config defaults read in code:\n" + "\n".join(found)


def test_the_scan_finds_a_config_default(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(config):\n    return config.train.get('num_steps', 10)\n")
    hits = _default_gets(bad, tmp_path)
    assert len(hits) == 1 and "config.train.get('num_steps', 10)" in hits[0]
