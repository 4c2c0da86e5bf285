"""The converter: readers, the rule table against the model tree, and every failure it reports."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from configs import tiny
from ov2seg_jax.convert.convert_ov2seg import abstract_variables, convert_state_dict
from ov2seg_jax.convert.converter import ConversionError, target_shapes_of
from ov2seg_jax.convert.infer_config import infer_model_config
from ov2seg_jax.convert.ov2seg_rules import ov2seg_rules
from ov2seg_jax.convert.readers import CheckpointFormatError, load_state_dict
from ov2seg_jax.convert.rules import TRANSFORMS


@pytest.fixture(scope="module")
def small_state(fixtures_root):
    return load_state_dict(os.path.join(fixtures_root, "ov2seg_small", "model_small.pth"))


def test_rules_fill_exactly_the_model_tree():
    """For the tiny config every leaf has exactly one rule and every rule a leaf."""
    cfg = tiny.get_config().model
    shapes = target_shapes_of(abstract_variables(cfg))
    targets = [r.target for r in ov2seg_rules(cfg)]
    assert len(targets) == len(set(targets))
    assert set(targets) == set(shapes)


def test_transforms():
    w = np.arange(2 * 3 * 5 * 7, dtype=np.float32).reshape(2, 3, 5, 7)
    assert TRANSFORMS["conv_oihw_to_hwio"](w)[4, 6, 2, 1] == w[1, 2, 4, 6]
    lin = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(TRANSFORMS["linear_transpose"](lin), lin.T)
    fused = np.arange(6 * 2, dtype=np.float32).reshape(6, 2)
    np.testing.assert_array_equal(TRANSFORMS["in_proj_k_kernel"](fused), fused[2:4].T)
    np.testing.assert_array_equal(TRANSFORMS["in_proj_v_bias"](np.arange(6.0)), [4.0, 5.0])


def test_infer_config_of_small_checkpoint(small_state):
    cfg = infer_model_config(small_state)
    assert cfg.backbone.stage_sizes == (1, 1, 1, 1)
    assert cfg.backbone.widths == (8, 16, 32, 64)
    assert cfg.pixel_decoder.num_encoder_layers == 2
    assert cfg.decoder.num_layers == 3
    assert cfg.decoder.num_queries == 20
    assert cfg.decoder.ffn_dim == 128
    assert cfg.num_classes == 40


def test_float16_checkpoint_is_widened(small_state):
    w = small_state["sem_seg_head.predictor.query_feat.weight"]
    assert w.dtype == np.float32
    # Stored as float16: every value is exactly representable in float16.
    np.testing.assert_array_equal(w.astype(np.float16).astype(np.float32), w)


def test_full_conversion_is_clean_and_keeps_classifier(small_state):
    cfg = infer_model_config(small_state)
    conv = convert_state_dict(small_state, cfg)
    assert conv.report.ok, conv.report.format()
    assert conv.classifier.shape == (40, 512)
    zs = small_state["sem_seg_head.predictor.class_embed.zs_weight"]
    np.testing.assert_array_equal(conv.classifier, zs[:, :-1].T)
    # Ignored on purpose, with reasons: counters, criterion buffers, the classifier buffer.
    assert any(k.endswith("num_batches_tracked") for k in conv.report.ignored_source_keys)
    assert "criterion.freq_weight" in conv.report.ignored_source_keys


def test_checkpoint_without_batch_counters_converts(small_state):
    """Checkpoints from detectron2 before 2023-05 have no num_batches_tracked."""
    state = {k: v for k, v in small_state.items() if not k.endswith("num_batches_tracked")}
    conv = convert_state_dict(state, infer_model_config(small_state))
    assert conv.report.ok


def _error(state, cfg) -> str:
    with pytest.raises(ConversionError) as e:
        convert_state_dict(state, cfg)
    return str(e.value)


def test_missing_key_is_named(small_state):
    cfg = infer_model_config(small_state)
    state = dict(small_state)
    del state["sem_seg_head.predictor.decoder_norm.weight"]
    msg = _error(state, cfg)
    assert "sem_seg_head.predictor.decoder_norm.weight" in msg
    assert "params/predictor/decoder_norm/scale" in msg


def test_extra_key_is_named(small_state):
    state = dict(small_state)
    state["sem_seg_head.predictor.extra_head.weight"] = np.zeros((3, 3), np.float32)
    msg = _error(state, infer_model_config(small_state))
    assert "sem_seg_head.predictor.extra_head.weight" in msg


def test_misshaped_key_is_named(small_state):
    state = dict(small_state)
    key = "sem_seg_head.pixel_decoder.mask_features.weight"
    state[key] = np.zeros((256, 128, 1, 1), np.float32)
    msg = _error(state, infer_model_config(small_state))
    assert key in msg and "(256, 128, 1, 1)" in msg


def test_wrong_architecture_is_refused(small_state):
    msg = _error(small_state, tiny.get_config().model)
    assert "does not match the model" in msg


def test_partial_conversion_when_asked(small_state):
    cfg = infer_model_config(small_state)
    state = {
        k: v
        for k, v in small_state.items()
        if not k.startswith("sem_seg_head.predictor.mask_embed")
    }
    conv = convert_state_dict(state, cfg, allow_partial=True)
    assert not conv.report.ok
    assert conv.variables["params"]["predictor"]["mask_embed"]["layers_0"]["kernel"].shape == (
        256,
        256,
    )


def test_pkl_checkpoint_reads_like_pth(small_state, tmp_path):
    path = tmp_path / "model.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": {k: v for k, v in small_state.items()}, "__author__": "test"}, f)
    state = load_state_dict(str(path))
    assert state.keys() == small_state.keys()
    for k in state:
        np.testing.assert_array_equal(state[k], small_state[k])


def test_unreadable_checkpoint_errors(tmp_path):
    bad = tmp_path / "model.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointFormatError, match="model.pth"):
        load_state_dict(str(bad))
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_state_dict(str(tmp_path / "nothing.pth"))
    odd = tmp_path / "model.safetensors"
    odd.write_bytes(b"")
    with pytest.raises(CheckpointFormatError, match="extension"):
        load_state_dict(str(odd))


def test_bare_state_dict_pth(small_state, tmp_path):
    path = tmp_path / "bare.pth"
    torch.save({k: torch.from_numpy(v) for k, v in list(small_state.items())[:5]}, path)
    state = load_state_dict(str(path))
    assert list(state) == list(small_state)[:5]
