"""One training step as a pure function ``train_step(state, batch) -> (state, metrics)``.

The step normalises the images, runs the model with deep supervision, computes the weighted sum
of the criterion's terms, differentiates it, and applies the optimizer. With ``compute_dtype``
bfloat16 the parameters and images are cast to bfloat16 for the forward and backward passes
while the master parameters, the optimizer and the losses stay in float32.

``grad_norm`` is the global L2 norm of the gradients before clipping, formed as the original's
``clip_grad_norm_`` forms it. ``diagnostics=True`` adds to the metrics the pre-clip gradients
(``grads``), the clip coefficient (``clip_coef``) and the float32 model outputs (``outputs``), for
the parity check against the original's recorded step; the loop never asks for them.

A step whose loss or gradient norm is not finite leaves the state unchanged (including the step
counter) and reports ``finite = False``; the loop stops with an error when it sees that, so no
checkpoint ever holds a poisoned state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ov2seg_jax.losses.criterion import total_loss
from ov2seg_jax.models.outputs import ModelOutputs
from ov2seg_jax.models.preprocess import PIXEL_MEAN, PIXEL_STD
from ov2seg_jax.train.optimizer import clip_coefficient, global_grad_norm
from ov2seg_jax.train.state import TrainState

# (outputs, targets, rng) -> unweighted loss terms.
LossTermsFn = Callable[[ModelOutputs, dict, jax.Array], dict[str, jax.Array]]

TARGET_KEYS = ("labels", "masks", "valid")


def normalize_images(images: jax.Array) -> jax.Array:
    """uint8 (or 0..255 float) RGB -> float32 normalised with the ImageNet statistics."""
    mean = jnp.asarray(PIXEL_MEAN, jnp.float32)
    std = jnp.asarray(PIXEL_STD, jnp.float32)
    return (images.astype(jnp.float32) - mean) / std


def flatten_clips(batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Clip batches (B, T, ...) -> per-frame batches (B*T, ...); image batches pass through.

    The model is a per-frame model: frames of a clip are independent training images that share
    their augmentation. A clip batch is recognised by a 5-D ``image``.
    """
    if batch["image"].ndim == 4:
        return dict(batch)
    return {k: v.reshape((-1, *v.shape[2:])) for k, v in batch.items()}


def _cast_floats(tree, dtype):
    return jax.tree.map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree
    )


def make_train_step(
    model: nn.Module,
    tx: optax.GradientTransformation,
    loss_terms_fn: LossTermsFn,
    loss_weights: Mapping[str, float],
    class_embeddings: jax.Array,
    *,
    learning_rate_fn: Callable[[jax.Array], jax.Array],
    compute_dtype: str = "float32",
    clip_norm: float = 0.0,
    diagnostics: bool = False,
) -> Callable[[TrainState, dict], tuple[TrainState, dict[str, jax.Array]]]:
    """Build the (un-jitted) train step; the loop jits it with shardings and donation.

    ``clip_norm`` only feeds the ``clip_coef`` diagnostic (the clipping itself is part of ``tx``).
    """
    dtype = jnp.dtype(compute_dtype)
    weights = dict(loss_weights)

    def step(state: TrainState, batch: dict) -> tuple[TrainState, dict[str, jax.Array]]:
        batch = flatten_clips(batch)
        rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        model_rng, loss_rng = jax.random.split(rng)
        images = normalize_images(batch["image"]).astype(dtype)
        targets = {k: batch[k] for k in TARGET_KEYS}
        text = class_embeddings.astype(dtype)

        def loss_fn(params):
            variables = {"params": _cast_floats(params, dtype)}
            if state.frozen:
                variables["frozen"] = state.frozen
            outputs = model.apply(variables, images, text, train=True, rngs={"dropout": model_rng})
            outputs = _cast_floats(outputs, jnp.float32)
            terms = loss_terms_fn(outputs, targets, loss_rng)
            return total_loss(terms, weights), (terms, outputs)

        (total, (terms, outputs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        grad_norm = global_grad_norm(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(total) & jnp.isfinite(grad_norm)
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        new_state = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new_state, state)
        metrics = {
            "loss": total,
            **terms,
            "grad_norm": grad_norm,
            "learning_rate": learning_rate_fn(state.step),
            "finite": finite,
        }
        if diagnostics:
            metrics.update(
                grads=grads, outputs=outputs, clip_coef=clip_coefficient(grad_norm, clip_norm)
            )
        return new_state, metrics

    return step
