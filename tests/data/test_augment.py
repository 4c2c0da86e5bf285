"""Large-scale jitter (ov2seg_jax.data.augment): geometry, alignment of masks and pixels, PIL parity."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from configs import ov2seg_r50_lvvis
from data_prep import fake_layouts
from ov2seg_jax.config_fields import from_section
from ov2seg_jax.data import augment
from ov2seg_jax.data.pipeline import augment_example


def _lsj(**overrides) -> augment.LSJConfig:
    """The default config's jitter (the original's LVIS recipe) with a test's changes."""
    data = ov2seg_r50_lvvis.get_config().data
    return from_section(augment.LSJConfig, data, "config.data", **overrides)


def _params(flip: bool, out_h: int, out_w: int, off_y: int, off_x: int) -> augment.LSJParams:
    c = lambda v: tf.constant(v, tf.int32)  # noqa: E731
    return augment.LSJParams(tf.constant(flip), c(out_h), c(out_w), c(off_y), c(off_x))


def _scene(height: int = 24, width: int = 32, seed: int = 0):
    """A painted frame (H, W, 3) and its instance masks (N, H, W), one colour per instance."""
    rng = np.random.default_rng(seed)
    boxes = fake_layouts._boxes(rng, 3, height, width)
    img = fake_layouts.paint(boxes, height, width)
    masks = np.zeros((len(boxes), height, width), np.uint8)
    for j, (x0, y0, x1, y1) in enumerate(boxes):
        masks[j, y0:y1, x0:x1] = 1
    return img, masks


def test_nearest_upsample_crop_pad_flip_equals_numpy():
    """Scale x2 (nearest: each pixel repeated), crop 20x20 at (3, 5), with and without flip."""
    img, masks = _scene(height=12, width=16)
    cfg = _lsj(image_size=20, interpolation="nearest")
    for flip in (False, True):
        p = _params(flip, 24, 32, 3, 5)
        out = augment.transform_frames(tf.constant(img[None]), p, cfg).numpy()[0]
        out_m = augment.transform_masks(tf.constant(masks), p, cfg).numpy()
        src = img[:, ::-1] if flip else img
        src_m = masks[:, :, ::-1] if flip else masks
        big = src.repeat(2, 0).repeat(2, 1)[3 : 3 + 20, 5 : 5 + 20]
        big_m = src_m.repeat(2, 1).repeat(2, 2)[:, 3 : 3 + 20, 5 : 5 + 20]
        np.testing.assert_array_equal(out[: big.shape[0], : big.shape[1]], big)
        np.testing.assert_array_equal(out_m[:, : big.shape[0], : big.shape[1]], big_m.astype(bool))
        # 24 - 3 = 21 >= 20 rows of content; 32 - 5 = 27 >= 20 columns: no padding needed.
        assert big.shape[:2] == (20, 20)


def test_downscale_pads_bottom_right_with_128_and_marks_padding():
    img, masks = _scene()
    cfg = _lsj(image_size=40, interpolation="nearest")
    p = _params(False, 12, 16, 0, 0)  # x0.5
    out = augment.transform_frames(tf.constant(img[None]), p, cfg).numpy()[0]
    out_m = augment.transform_masks(tf.constant(masks), p, cfg).numpy()
    pad = augment.padding_mask(p, cfg).numpy()
    # Output pixel i samples the source pixel whose centre is nearest (i + 0.5) * 2: row 2i + 1.
    np.testing.assert_array_equal(out[:12, :16], img[1::2, 1::2])
    np.testing.assert_array_equal(out_m[:, :12, :16], masks[:, 1::2, 1::2].astype(bool))
    assert (out[12:] == 128).all() and (out[:, 16:] == 128).all()
    assert not out_m[:, 12:].any() and not out_m[:, :, 16:].any()
    expected_pad = np.ones((40, 40), bool)
    expected_pad[:12, :16] = False
    np.testing.assert_array_equal(pad, expected_pad)


@pytest.mark.parametrize("size", [(20, 28), (80, 112), (30, 42)])
def test_bilinear_matches_pil_resize_then_crop(size):
    """detectron2 resizes with PIL bilinear (antialiased); ours agrees within 1 grey level."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    cfg = _lsj(image_size=32)
    oh, ow = size
    oy, ox = max(oh - 32, 0) // 2, max(ow - 32, 0) // 3
    out = augment.transform_frames(tf.constant(img[None]), _params(False, oh, ow, oy, ox), cfg)
    out = out.numpy()[0].astype(int)
    ref = np.asarray(Image.fromarray(img).resize((ow, oh), Image.BILINEAR)).astype(int)
    ref = ref[oy : oy + 32, ox : ox + 32]
    h, w = ref.shape[:2]
    assert np.abs(out[:h, :w] - ref).max() <= 1
    assert (out[h:] == 128).all() and (out[:, w:] == 128).all()


def test_sample_lsj_follows_detectron2_formulas():
    """Recompute the draw from the same stateless uniforms with numpy (ResizeScale, FixedSizeCrop)."""
    cfg = _lsj(image_size=64, min_scale=0.1, max_scale=2.0)
    seen_flip = set()
    for k in range(20):
        seed = tf.constant([7, k], tf.int64)
        h, w = 48, 80
        p = augment.sample_lsj(seed, tf.constant(h), tf.constant(w), cfg)
        u = tf.random.stateless_uniform([3], seed=seed, dtype=tf.float64).numpy()
        s = 0.1 + 1.9 * u[1]
        scale = min(64 * s / h, 64 * s / w)
        out_h, out_w = np.round(np.array([h, w]) * scale).astype(int)
        off = np.round(np.maximum(np.array([out_h, out_w]) - 64, 0) * u[2]).astype(int)
        assert (int(p.out_h), int(p.out_w)) == (out_h, out_w)
        assert (int(p.off_y), int(p.off_x)) == tuple(off)
        assert bool(p.flip) == (u[0] < 0.5)
        seen_flip.add(bool(p.flip))
    assert seen_flip == {False, True}
    no_flip = _lsj(image_size=64, random_flip=False)
    assert not any(
        bool(augment.sample_lsj(tf.constant([7, k], tf.int64), 48, 80, no_flip).flip)
        for k in range(10)
    )


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_masks_select_their_instance_colour_under_random_lsj(interpolation):
    """Every transformed mask covers exactly the pixels painted in its instance's colour."""
    img, masks = _scene(height=36, width=48, seed=2)
    cfg = _lsj(image_size=48, min_scale=0.5, max_scale=2.0, interpolation=interpolation)
    labels = tf.constant([0, 1, 2], tf.int32)
    checked = 0
    for k in range(12):
        out = augment_example(
            tf.constant(img[None]),
            tf.constant(masks[None]),
            labels,
            tf.constant([3, k], tf.int64),
            cfg,
            max_instances=4,
        )
        image = out["image"].numpy()[0].astype(int)
        for slot in range(4):
            if not out["valid"].numpy()[0, slot]:
                assert not out["masks"].numpy()[0, slot].any()
                continue
            j = int(out["labels"].numpy()[0, slot])
            colour = np.asarray(fake_layouts.instance_colour(j))
            painted = np.abs(image - colour).sum(-1) <= 6
            m = out["masks"].numpy()[0, slot]
            if interpolation == "nearest":
                np.testing.assert_array_equal(m, painted)
            else:
                # Bilinear blends one pixel at the borders: interiors agree exactly.
                inner = (
                    m & np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1)
                )
                assert painted[inner].all()
                assert not (painted & ~m).any()
            checked += 1
    assert checked >= 12


def test_eager_equals_inside_tf_data():
    img, masks = _scene(seed=3)
    cfg = _lsj(image_size=32)
    frames = np.stack([img, img])
    clip_masks = np.stack([masks, masks])
    labels = np.array([4, 5, 6], np.int32)

    def run(seed_k):
        return augment_example(
            tf.constant(frames),
            tf.constant(clip_masks),
            tf.constant(labels),
            tf.stack([tf.constant(11, tf.int64), seed_k]),
            cfg,
            max_instances=5,
        )

    eager = [run(tf.constant(k, tf.int64)) for k in range(4)]
    ds = tf.data.Dataset.range(4).map(run, num_parallel_calls=2, deterministic=True)
    for e, g in zip(eager, ds.as_numpy_iterator(), strict=True):
        for key in ("image", "masks", "labels", "valid", "padding"):
            np.testing.assert_array_equal(e[key].numpy(), g[key], err_msg=key)
    # One draw for the whole clip: two equal frames stay equal; other seeds differ.
    for e in eager:
        np.testing.assert_array_equal(e["image"].numpy()[0], e["image"].numpy()[1])
        np.testing.assert_array_equal(e["masks"].numpy()[0], e["masks"].numpy()[1])
    assert not np.array_equal(eager[0]["image"].numpy(), eager[1]["image"].numpy())


def test_instance_absent_from_a_frame_is_invalid_there_and_empty_ones_are_dropped():
    img, masks = _scene(seed=4)
    clip = np.stack([masks, masks]).copy()
    clip[1, 0] = 0  # instance 0 absent from frame 1
    clip[:, 1] = 0  # instance 1 absent everywhere: dropped
    cfg = _lsj(image_size=32, min_scale=1.0, max_scale=1.0, random_flip=False)
    out = augment_example(
        tf.constant(np.stack([img, img])),
        tf.constant(clip),
        tf.constant([7, 8, 9]),
        tf.constant([0, 0], tf.int64),
        cfg,
        max_instances=3,
    )
    np.testing.assert_array_equal(out["valid"].numpy(), [[True, True, False], [False, True, False]])
    np.testing.assert_array_equal(out["labels"].numpy(), [[7, 9, 0], [0, 9, 0]])
    assert int(out["num_instances"]) == 2


def test_bad_config_values_are_named():
    with pytest.raises(ValueError, match="min_scale"):
        _lsj(min_scale=2.0, max_scale=1.0)
    with pytest.raises(ValueError, match="interpolation"):
        _lsj(interpolation="cubic")
