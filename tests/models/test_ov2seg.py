"""Properties of the assembled model that hold for any weights (tiny config, random init)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from configs import tiny
from ov2seg_jax.models.interpolate import resize_bilinear
from ov2seg_jax.models.ov2seg import build_model
from ov2seg_jax.models.position_encoding import sine_position_encoding
from ov2seg_jax.models.preprocess import normalize_and_pad


@pytest.fixture(scope="module")
def tiny_model():
    cfg = tiny.get_config()
    model = build_model(cfg.model)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 50, 70, 3), dtype=np.uint8)
    images = normalize_and_pad(frames)
    text = jnp.asarray(rng.standard_normal((5, cfg.model.decoder.text_embed_dim)), jnp.float32)
    variables = jax.jit(model.init)(jax.random.key(0), images, text)
    apply = jax.jit(model.apply)
    return model, variables, apply, images, text


def test_output_layout(tiny_model):
    model, variables, apply, images, text = tiny_model
    out = apply(variables, images, text)
    assert images.shape == (2, 64, 96, 3)  # padded to multiples of 32
    assert out.pred_logits.shape == (2, 8, 6)
    assert out.pred_masks.shape == (2, 8, 16, 24)
    assert out.pred_embds.shape == (2, 8, 64)
    assert len(out.aux_outputs) == 2  # learnable queries + all layers but the last
    np.testing.assert_array_equal(np.asarray(out.pred_logits[..., -1]), 0.0)  # background column


def test_vocabulary_is_an_input(tiny_model):
    """Class logits for a subset / reordering of the vocabulary are the matching columns."""
    _, variables, apply, images, text = tiny_model
    full = np.asarray(apply(variables, images, text).pred_logits)
    order = np.array([3, 0, 4])
    sub = np.asarray(apply(variables, images, text[order]).pred_logits)
    np.testing.assert_allclose(sub[..., :-1], full[..., order], atol=1e-5)
    # Text embeddings are L2-normalised inside: scaling them changes nothing.
    scaled = np.asarray(apply(variables, images, 7.0 * text).pred_logits)
    np.testing.assert_allclose(scaled, full, atol=1e-5)
    # Temperature 50 bounds |cosine * 50|.
    assert np.abs(full).max() <= 50.0 + 1e-4


def test_frames_are_independent(tiny_model):
    _, variables, apply, images, text = tiny_model
    both = apply(variables, images, text)
    second = apply(variables, images[1:], text)
    np.testing.assert_allclose(
        np.asarray(both.pred_masks[1:]), np.asarray(second.pred_masks), atol=1e-4
    )


def test_normalisation_and_padding():
    frames = np.full((1, 33, 40, 3), 255, np.uint8)
    out = np.asarray(normalize_and_pad(frames))
    assert out.shape == (1, 64, 64, 3)
    np.testing.assert_allclose(
        out[0, 0, 0],
        (255 - np.array([123.675, 116.28, 103.53])) / np.array([58.395, 57.12, 57.375]),
        rtol=1e-6,
    )
    assert np.all(out[0, 33:] == 0) and np.all(out[0, :, 40:] == 0)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        normalize_and_pad(np.zeros((33, 40, 3), np.uint8))


@pytest.mark.parametrize(
    "src,dst",
    [
        ((24, 32), (3, 4)),
        ((24, 32), (12, 16)),
        ((12, 16), (24, 32)),
        ((7, 13), (20, 9)),
        ((16, 24), (96, 144)),
    ],
)
def test_resize_matches_torch(src, dst):
    x = np.random.default_rng(1).standard_normal((2, 3, *src)).astype(np.float32)
    want = torch.nn.functional.interpolate(
        torch.from_numpy(x), size=dst, mode="bilinear", align_corners=False
    ).numpy()
    got = np.asarray(resize_bilinear(jnp.asarray(x), dst, layout="NCHW"))
    # PyTorch rounds its source coordinates slightly differently (a few float32 ulps).
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_sine_position_encoding_values():
    pe = sine_position_encoding(3, 4, 8)
    # Channel 0 is sin of the normalised y position (row 1 of 3 -> 1/3 * 2pi), channel 8 sin of x.
    np.testing.assert_allclose(pe[0, 0, 0], np.sin(1 / (3 + 1e-6) * 2 * np.pi), rtol=1e-6)
    np.testing.assert_allclose(pe[2, 3, 8], np.sin(4 / (4 + 1e-6) * 2 * np.pi), atol=1e-6)
    np.testing.assert_allclose(pe[1, 2, 1], np.cos(2 / (3 + 1e-6) * 2 * np.pi), rtol=1e-6)
    dim_t = 10000 ** (2 * (2 // 2) / 8)
    np.testing.assert_allclose(pe[1, 2, 10], np.sin(3 / (4 + 1e-6) * 2 * np.pi / dim_t), rtol=1e-5)
