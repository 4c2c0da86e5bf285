"""--mode export: artifacts reloaded in a fresh process equal the live model; prediction from an
export equals prediction from the checkpoint; a bucket that was not exported is a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import ov2seg_swinb_lvvis as swinb_lvvis
from configs import tiny
from ov2seg_jax import checkpoint, modes
from ov2seg_jax.compile_cache import native_library_tag
from ov2seg_jax.convert.convert_ov2seg import abstract_variables
from ov2seg_jax.export.buckets import Bucket
from ov2seg_jax.export.loaded import ExportedModel
from ov2seg_jax.export.writer import (
    PORTABLE,
    _export_native_cpu,
    _specs,
    window_function,
    with_kernels,
)
from ov2seg_jax.inference.predictor import jitted_forward
from ov2seg_jax.models.ov2seg import build_model
from tests.export.conftest import MIN_SIZE, write_frames
from tests.inference.conftest import ROOT

# Float32 tolerances of the parity tables (fixtures README): logits and embeddings, mask logits.
ATOL = {"pred_logits": 2e-4, "pred_object_logits": 2e-4, "pred_embds": 2e-4, "pred_masks": 5e-4}


def _live_outputs(model_dir, images, classifier):
    jax.config.update("jax_default_matmul_precision", "highest")
    cfg = tiny.get_config().model
    variables = checkpoint.load_model(model_dir, abstract_variables(cfg))
    out = jitted_forward(build_model(cfg))(variables, images, classifier)
    return {k: np.asarray(v) for k, v in out.items()}


_RELOAD = r"""
import json, os, sys
import numpy as np
d, inputs, out = sys.argv[1:4]
import jax
m = json.load(open(os.path.join(d, "manifest.json")))
entry = m["buckets"][0]
with np.load(os.path.join(d, m["weights"]["file"])) as w:
    weights = [w[a["key"]] for a in m["weights"]["arrays"]]
x = np.load(inputs)
exp = jax.export.deserialize(bytearray(open(os.path.join(d, entry["file"]), "rb").read()))
res = {"jax_" + k: np.asarray(v) for k, v in exp.call(weights, x["images"], x["classifier"]).items()}
import tensorflow as tf
sm = tf.saved_model.load(os.path.join(d, m["saved_model"]["dir"]))
sig = sm.signatures[entry["saved_model_signature"]]
o = sig(images=tf.constant(x["images"]), classifier=tf.constant(x["classifier"]))
res.update({"tf_" + k: v.numpy() for k, v in o.items()})
res["platforms"] = np.array(exp.platforms)
np.savez(out, **res)
"""


@pytest.fixture(scope="module")
def reloaded(exported):
    """Both artifacts of the first bucket run in a fresh process on one random window."""
    root, cfg, manifest, classifier = exported
    rng = np.random.default_rng(2)
    images = rng.standard_normal((4, 64, 96, 3)).astype(np.float32)
    np.savez(root / "inputs.npz", images=images, classifier=classifier)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    proc = subprocess.run(
        [sys.executable, "-c", _RELOAD, cfg.export.output, root / "inputs.npz", root / "out.npz"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    live = _live_outputs(cfg.checkpoint.path, images, classifier)
    return dict(np.load(root / "out.npz")), live


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["jax", "tf"])
def test_artifact_in_a_fresh_process_equals_the_live_model(reloaded, runtime):
    got, live = reloaded
    assert tuple(got["platforms"]) == ("cpu", "cuda", "tpu")
    for key, want in live.items():
        assert got[f"{runtime}_{key}"].shape == want.shape
        np.testing.assert_allclose(got[f"{runtime}_{key}"], want, atol=ATOL[key], rtol=0)
    assert np.abs(live["pred_masks"]).max() > 0.1  # the comparison is not between zeros


def test_manifest_describes_the_buckets_and_the_contract(exported):
    root, cfg, manifest, _ = exported
    on_disk = json.load(open(os.path.join(cfg.export.output, "manifest.json")))
    assert on_disk == manifest
    assert [b["name"] for b in manifest["buckets"]] == ["4x64x96x3", "4x96x64x3"]
    assert manifest["buckets"][0]["outputs"] == {
        "pred_embds": [4, 8, 64],
        "pred_logits": [4, 8, 4],
        "pred_masks": [4, 8, 16, 24],
        "pred_object_logits": [4, 8, 2],
    }
    assert manifest["platforms"] == ["cpu", "cuda", "tpu"]
    assert manifest["msda_implementation"] == "xla"
    assert manifest["cpu_native_library"] == native_library_tag() != "no-native"
    for b in manifest["buckets"]:
        assert b["cpu_native_file"] == f"bucket_{b['name']}.cpu_native.jax_exported"
        assert os.path.isfile(os.path.join(cfg.export.output, b["cpu_native_file"]))
    assert manifest["jax_version"] == jax.__version__
    version = manifest["calling_convention_version"]
    assert isinstance(version, int) and f"calling convention {version}" in manifest["compatibility"]
    assert "unknown" not in manifest["compatibility"]
    assert manifest["inputs"][1]["shape"] == ["window", "height", "width", 3]
    assert manifest["inputs"][2]["shape"] == ["num_classes", 32]
    pre = manifest["preprocessing"]
    assert pre["min_size"] == MIN_SIZE and pre["size_divisibility"] == 32
    assert pre["mean"] == [123.675, 116.28, 103.53]
    with np.load(os.path.join(cfg.export.output, "weights.npz")) as w:
        assert len(w.files) == manifest["weights"]["count"]
    assert sorted(manifest["saved_model"]["signatures"]) == [
        "bucket_4x64x96x3",
        "bucket_4x96x64x3",
        "serving_default",
    ]


def _predict(cfg, root, name, frames, export=""):
    cfg = cfg.copy_and_resolve_references()
    cfg.inference.export = export
    cfg.predict.input = frames
    cfg.predict.output = str(root / name)
    cfg.predict.vocabulary = str(root / "vocab.npy")
    cfg.predict.overlay = "none"
    cfg.predict.score_threshold = 0.0
    return modes.run_predict(cfg, str(root / "work"))


@pytest.mark.slow
def test_predict_from_the_export_equals_predict_from_the_checkpoint(exported):
    root, cfg, _, _ = exported
    frames = write_frames(root / "frames")
    _predict(cfg, root, "from_checkpoint", frames)
    _predict(cfg, root, "from_export", frames, export=cfg.export.output)
    want = json.load(open(root / "from_checkpoint" / "results.json"))
    got = json.load(open(root / "from_export" / "results.json"))
    assert len(got) == len(want) == 10
    for g, w in zip(got, want, strict=True):
        assert g["score"] == pytest.approx(w["score"], rel=1e-5, abs=1e-7)
        assert {k: v for k, v in g.items() if k != "score"} == {
            k: v for k, v in w.items() if k != "score"
        }
    assert (root / "from_export" / "categories.json").read_text() == (
        root / "from_checkpoint" / "categories.json"
    ).read_text()


@pytest.mark.slow
def test_the_native_cpu_artifact_runs_here_and_equals_the_live_model(exported):
    root, cfg, manifest, classifier = exported
    model = ExportedModel.load(cfg.export.output)
    bucket = Bucket(4, 64, 96, 3)
    assert model.artifact(bucket) == manifest["buckets"][0]["cpu_native_file"]
    images = np.random.default_rng(4).standard_normal((4, 64, 96, 3)).astype(np.float32)
    got = {k: np.asarray(v) for k, v in model.forward(model.weights, images, classifier).items()}
    live = _live_outputs(cfg.checkpoint.path, images, classifier)
    for key, want in live.items():
        np.testing.assert_allclose(got[key], want, atol=ATOL[key], rtol=0)
    assert np.abs(live["pred_masks"]).max() > 0.1


def test_a_native_artifact_of_another_library_build_is_not_used(exported, tmp_path):
    root, cfg, manifest, _ = exported
    other = {**manifest, "cpu_native_library": "0123456789ab"}
    model = ExportedModel(cfg.export.output, other)
    assert model.artifact(Bucket(4, 64, 96, 3)) == manifest["buckets"][0]["file"]


def test_a_bucket_not_exported_is_an_error_naming_the_buckets(exported):
    root, cfg, _, _ = exported
    frames = write_frames(root / "square", h=64, w=64)  # padded 64x64: not exported
    with pytest.raises(modes.UserError) as err:
        _predict(cfg, root, "square_out", frames, export=cfg.export.output)
    message = str(err.value)
    assert "4x64x64x3" in message and "4x64x96x3, 4x96x64x3" in message
    assert not os.path.exists(root / "square_out")


def test_bad_export_settings_are_one_line_errors(exported, tmp_path):
    root, cfg, _, _ = exported
    bad = cfg.copy_and_resolve_references()
    bad.export.buckets = "4x64x90x3"
    bad.export.output = str(tmp_path / "x")
    with pytest.raises(modes.UserError, match="multiples of the network stride 32"):
        modes.run_export(bad, str(tmp_path))
    bad.export.buckets = "4x64"
    with pytest.raises(modes.UserError, match="WINDOWxHEIGHTxWIDTHxCLASSES"):
        modes.run_export(bad, str(tmp_path))
    bad.export.buckets = "4x64x64x3"
    bad.export.platforms = "cpu,rocm3"
    with pytest.raises(modes.UserError, match="rocm3"):
        modes.run_export(bad, str(tmp_path))
    missing = cfg.copy_and_resolve_references()
    missing.inference.export = str(tmp_path / "nowhere")
    with pytest.raises(modes.UserError, match="not an export folder"):
        modes.load_predictor(missing, str(tmp_path))


def _tiny_swin_model_config():
    cfg = tiny.get_config().model
    cfg.backbone = swinb_lvvis.get_config().model.backbone
    cfg.backbone.update(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 2), window_size=4)
    return cfg


def test_swin_artifacts_call_the_native_window_attention_only_in_the_native_variant():
    """A Swin export's portable artifact is plain StableHLO; its CPU-native one calls both native
    cores (lowered only, not compiled: the values of the native cores are tested in kernels/)."""
    cfg = _tiny_swin_model_config()
    assert with_kernels(cfg, "cpu").backbone.attention_implementation == "cpu"
    assert with_kernels(cfg, PORTABLE).backbone.attention_implementation == PORTABLE
    assert cfg.backbone.attention_implementation == "auto"  # the input is not changed
    if native_library_tag() == "no-native":
        pytest.skip("the native CPU library is not built")
    shapes = abstract_variables(cfg)
    leaves, treedef = jax.tree_util.tree_flatten(shapes)
    arrays = [np.zeros(x.shape, x.dtype) for x in leaves]
    bucket = Bucket(2, 64, 64, 3)
    native = jax.export.deserialize(
        bytearray(_export_native_cpu(cfg, treedef, arrays, bucket, cfg.decoder.text_embed_dim))
    )
    text = native.mlir_module()
    assert "ov2seg_window_attention_cpu_forward_f32" in text
    assert "ov2seg_msda_cpu_forward_f32" in text
    portable = jax.jit(window_function(build_model(with_kernels(cfg, PORTABLE)), treedef))
    lowered = portable.lower(*_specs(arrays, bucket, cfg.decoder.text_embed_dim)).as_text()
    assert "ov2seg_" not in lowered and "custom_call" not in lowered
