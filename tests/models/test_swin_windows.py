"""Swin's window gathers against the original's pad -> roll -> partition (and back), values and
gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ov2seg_jax.models.backbones.swin_windows import (
    from_windows,
    partition_grid,
    to_windows,
    window_layout,
)

# (h, w, window, shift): padded on both sides, on none, shifted or not, a window larger than a side.
GRIDS = [(7, 13, 4, 2), (8, 12, 4, 0), (8, 12, 4, 2), (5, 9, 4, 0), (3, 5, 7, 3)]


def _naive_to_windows(x, hw, window, shift, pad_row):
    """The original's steps in jnp: pad with pad_row, roll by -shift, cut windows."""
    b, _, c = x.shape
    h, w = hw
    hp, wp = -(-h // window) * window, -(-w // window) * window
    grid = jnp.broadcast_to(pad_row, (b, hp, wp, c))
    grid = grid.at[:, :h, :w].set(x.reshape(b, h, w, c))
    grid = jnp.roll(grid, (-shift, -shift), axis=(1, 2))
    grid = grid.reshape(b, hp // window, window, wp // window, window, c).transpose(
        0, 1, 3, 2, 4, 5
    )
    return grid.reshape(b, -1, c)


def _naive_from_windows(y, hw, window, shift):
    b, _, c = y.shape
    h, w = hw
    hp, wp = -(-h // window) * window, -(-w // window) * window
    grid = y.reshape(b, hp // window, wp // window, window, window, c).transpose(0, 1, 3, 2, 4, 5)
    grid = jnp.roll(grid.reshape(b, hp, wp, c), (shift, shift), axis=(1, 2))
    return grid[:, :h, :w].reshape(b, h * w, c)


@pytest.mark.parametrize("h, w, window, shift", GRIDS)
def test_gathers_equal_pad_roll_partition(h, w, window, shift) -> None:
    rng = np.random.default_rng(h * 100 + w)
    x = jnp.asarray(rng.standard_normal((2, h * w, 3)), jnp.float32)
    pad_row = jnp.asarray([0.5, -1.5, 2.0], jnp.float32)
    got = to_windows(x, (h, w), window, shift, pad_row)
    want = _naive_to_windows(x, (h, w), window, shift, pad_row)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    np.testing.assert_array_equal(
        np.asarray(from_windows(got, (h, w), window, shift)), np.asarray(x)
    )
    y = jnp.asarray(rng.standard_normal(want.shape), jnp.float32)
    np.testing.assert_array_equal(
        np.asarray(from_windows(y, (h, w), window, shift)),
        np.asarray(_naive_from_windows(y, (h, w), window, shift)),
    )


@pytest.mark.parametrize("h, w, window, shift", GRIDS)
def test_gradients_equal_the_naive_steps(h, w, window, shift) -> None:
    """The custom VJPs (gathers) equal autodiff of pad/roll/partition, for x and the pad row."""
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.standard_normal((2, h * w, 3)), jnp.float32)
    pad_row = jnp.asarray(rng.standard_normal(3), jnp.float32)
    n_windows = window_layout(h, w, window, shift).source.size
    weights = jnp.asarray(rng.standard_normal((2, n_windows, 3)), jnp.float32)

    def round_trip(to, back):
        def loss(x, pad_row):
            windows = to(x, (h, w), window, shift, pad_row)
            out = back(jnp.tanh(windows) * weights, (h, w), window, shift)
            return jnp.sum(windows * weights) + jnp.sum(out**2)

        return loss

    got = jax.grad(round_trip(to_windows, from_windows), argnums=(0, 1))(x, pad_row)
    want = jax.grad(round_trip(_naive_to_windows, _naive_from_windows), argnums=(0, 1))(x, pad_row)
    for name, g, wv in zip(("x", "pad_row"), got, want, strict=True):
        np.testing.assert_allclose(
            np.asarray(g), np.asarray(wv), rtol=1e-6, atol=1e-6, err_msg=name
        )


def test_layout_tables() -> None:
    layout = window_layout(7, 13, 4, 2)
    assert layout.padded == (8, 16) and layout.windows == 8
    assert layout.source.shape == (8 * 16,) and layout.pads.size == 8 * 16 - 7 * 13
    assert np.array_equal(layout.source[layout.target], np.arange(7 * 13))
    assert np.all(layout.source[layout.pads] == 7 * 13)
    np.testing.assert_array_equal(
        partition_grid(np.arange(16).reshape(4, 4), 2),
        [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]],
    )
