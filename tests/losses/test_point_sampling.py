"""Point sampling against PyTorch's grid_sample (the original's point_sample) and by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ov2seg_jax.losses import point_sampling

# jitted: one compilation per test instead of one per primitive
point_sample = jax.jit(point_sampling.point_sample)
importance_points = jax.jit(point_sampling.importance_points, static_argnums=4)

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _torch_point_sample(maps: np.ndarray, points: np.ndarray) -> np.ndarray:
    """detectron2's point_sample: maps (N, 1, H, W), points (N, P, 2) -> (N, P)."""
    grid = 2.0 * torch.from_numpy(points)[:, :, None] - 1.0
    out = F.grid_sample(torch.from_numpy(maps)[:, None], grid, align_corners=False)
    return out[:, 0, :, 0].numpy()


def _points(rng, shape):
    # uniform inside, plus exact borders, pixel centres and points a little outside the map
    pts = rng.uniform(-0.15, 1.15, size=shape).astype(np.float32)
    pts[..., 0, :] = 0.0
    pts[..., 1, :] = 1.0
    pts[..., 2, :] = [0.5 / 7, 0.5 / 5]
    return pts


def test_point_sample_matches_grid_sample_with_index():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(2, 3, 5, 7)).astype(np.float32)
    points = _points(rng, (2, 4, 9, 2))
    index = np.array([[2, 0, 0, 1], [1, 2, 2, 0]], np.int32)
    ours = np.asarray(point_sample(jnp.asarray(maps), jnp.asarray(points), jnp.asarray(index)))
    picked = maps[np.arange(2)[:, None], index].reshape(8, 5, 7)
    ref = _torch_point_sample(picked, points.reshape(8, 9, 2)).reshape(2, 4, 9)
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)


def test_point_sample_bool_masks_and_identity_index():
    rng = np.random.default_rng(1)
    masks = rng.random((3, 6, 4)) > 0.5
    points = _points(rng, (3, 11, 2))
    ours = np.asarray(point_sample(jnp.asarray(masks), jnp.asarray(points)))
    ref = _torch_point_sample(masks.astype(np.float32), points)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)


def test_point_sample_gradient_matches_torch():
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(3, 5, 6)).astype(np.float32)
    points = _points(rng, (3, 8, 2))
    weights = rng.normal(size=(3, 8)).astype(np.float32)
    pts = jnp.asarray(points)
    loss = lambda m: jnp.sum(point_sample(m, pts) * weights)
    grad = jax.jit(jax.grad(loss))(jnp.asarray(maps))
    t = torch.from_numpy(maps).requires_grad_(True)
    out = F.grid_sample(
        t[:, None], 2.0 * torch.from_numpy(points)[:, :, None] - 1.0, align_corners=False
    )[:, 0, :, 0]
    (out * torch.from_numpy(weights)).sum().backward()
    np.testing.assert_allclose(np.asarray(grad), t.grad.numpy(), atol=1e-6, rtol=0)


def test_importance_points_keep_the_most_uncertain_candidates():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(1, 2, 4, 4)).astype(np.float32) * 3
    candidates = rng.uniform(size=(1, 2, 12, 2)).astype(np.float32)
    random_points = rng.uniform(size=(1, 2, 2, 2)).astype(np.float32)
    index = np.array([[1, 0]], np.int32)
    out = np.asarray(
        importance_points(
            jnp.asarray(logits),
            jnp.asarray(index),
            jnp.asarray(candidates),
            jnp.asarray(random_points),
            5,
        )
    )
    assert out.shape == (1, 2, 7, 2)
    for m in range(2):
        values = _torch_point_sample(logits[0, index[0, m]][None], candidates[0, m][None])[0]
        expected = candidates[0, m][np.argsort(np.abs(values))[:5]]
        got = out[0, m, :5]
        # the same set of points (order inside the set is irrelevant to the losses)
        np.testing.assert_array_equal(got[np.lexsort(got.T)], expected[np.lexsort(expected.T)])
        np.testing.assert_array_equal(out[0, m, 5:], random_points[0, m])


def test_point_sample_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="points must have shape"):
        point_sampling.point_sample(jnp.zeros((2, 3, 4, 4)), jnp.zeros((3, 3, 5, 2)))
    with pytest.raises(ValueError, match="one set per map"):
        point_sampling.point_sample(jnp.zeros((2, 3, 4, 4)), jnp.zeros((2, 2, 5, 2)))
