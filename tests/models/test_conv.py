"""models/conv.py: 1x1 convolutions run as matrix products, everything else as flax's Conv."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ov2seg_jax.models.conv import conv

# (kernel, stride, padding, dilation, groups, runs as a product)
CASES = [
    ((1, 1), 1, "SAME", 1, 1, True),
    ((1, 1), 2, "SAME", 1, 1, True),
    ((1, 1), 2, ((0, 0), (0, 0)), 1, 1, True),
    ((1, 1), 3, "VALID", 1, 1, True),
    ((1, 1), 1, ((1, 1), (0, 0)), 1, 1, False),  # padded: stays a convolution
    ((1, 1), 1, "SAME", 1, 2, False),  # grouped
    ((3, 3), 1, ((1, 1), (1, 1)), 1, 1, False),
    ((3, 3), 2, "SAME", 2, 1, False),
]


@pytest.mark.parametrize("kernel,stride,padding,dilation,groups,product", CASES)
def test_equals_flax_conv_with_gradients(kernel, stride, padding, dilation, groups, product):
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 9, 11, 8)), jnp.float32)
    kw = dict(
        strides=(stride, stride),
        padding=padding,
        kernel_dilation=(dilation, dilation),
        feature_group_count=groups,
    )
    ours, flax_conv = conv(6, kernel, **kw), nn.Conv(6, kernel, **kw)
    variables = flax_conv.init(jax.random.key(1), x)
    assert jax.tree.structure(ours.init(jax.random.key(1), x)) == jax.tree.structure(variables)

    def loss(module):
        return lambda v, x: jnp.sum(jnp.sin(module.apply(v, x)))

    want = flax_conv.apply(variables, x)
    got = ours.apply(variables, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
    grads_want = jax.grad(loss(flax_conv), argnums=(0, 1))(variables, x)
    grads_got = jax.grad(loss(ours), argnums=(0, 1))(variables, x)
    for g, w in zip(jax.tree.leaves(grads_got), jax.tree.leaves(grads_want), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-4)
    jaxpr = str(jax.make_jaxpr(ours.apply)(variables, x))
    assert ("conv_general_dilated" not in jaxpr) == product, jaxpr
    assert ("dot_general" in jaxpr) == product, jaxpr


def test_bfloat16_product_keeps_the_dtype():
    x = jnp.ones((1, 4, 4, 8), jnp.float32)
    module = conv(3, (1, 1), dtype=jnp.bfloat16)
    variables = module.init(jax.random.key(0), x)
    out = module.apply(variables, x)
    want = nn.Conv(3, (1, 1), dtype=jnp.bfloat16).apply(variables, x)
    assert out.dtype == want.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(want, np.float32), rtol=1e-2)
