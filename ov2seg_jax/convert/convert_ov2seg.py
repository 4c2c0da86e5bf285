"""Convert an original OV2Seg checkpoint into Flax variables for the model of ``config.model``."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ov2seg_jax.convert.converter import (
    ConversionError,
    ConversionReport,
    apply_rules,
    flatten_paths,
    target_shapes_of,
    unflatten_paths,
)
from ov2seg_jax.convert.ov2seg_rules import PR, ignored_source_keys, ov2seg_rules
from ov2seg_jax.convert.readers import load_state_dict
from ov2seg_jax.models.ov2seg import build_model

CLASSIFIER_KEY = f"{PR}.class_embed.zs_weight"


@dataclasses.dataclass
class ConvertedModel:
    variables: dict  # {"params": ..., "frozen": ...} as numpy arrays
    classifier: np.ndarray | None  # (C, D) text embeddings found in the checkpoint, if any
    report: ConversionReport


def abstract_variables(model_cfg: ml_collections.ConfigDict):
    """Shapes of every variable of the model (no computation, no memory)."""
    model = build_model(model_cfg)
    images = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    text = jax.ShapeDtypeStruct((2, model_cfg.decoder.text_embed_dim), jnp.float32)
    return jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros(images.shape), jnp.zeros(text.shape))
    )


def random_variables(model_cfg: ml_collections.ConfigDict, seed: int = 0, std: float = 0.1):
    """Random variables of the model's shapes, filled with numpy (nothing is compiled): frozen
    batch-norm means 0, variances and scales 1, every other leaf ~ N(0, std^2). For benchmarks and
    tests that need a model directory of a real architecture without a checkpoint."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "['var']" in name or "['scale']" in name:
            return np.ones(leaf.shape, leaf.dtype)
        if "['mean']" in name:
            return np.zeros(leaf.shape, leaf.dtype)
        return (rng.standard_normal(leaf.shape) * std).astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, abstract_variables(model_cfg))


def classifier_from_state_dict(state_dict) -> np.ndarray | None:
    """The checkpoint's (D, C+1) ``zs_weight`` as (C, D) rows, background column dropped."""
    zs = state_dict.get(CLASSIFIER_KEY)
    if zs is None:
        return None
    if zs.ndim != 2 or zs.shape[1] < 2:
        raise ConversionError(f"{CLASSIFIER_KEY} has shape {zs.shape}, expected (D, C + 1)")
    return np.ascontiguousarray(zs[:, :-1].T, dtype=np.float32)


def convert_state_dict(
    state_dict,
    model_cfg: ml_collections.ConfigDict,
    *,
    allow_partial: bool = False,
    source: str = "checkpoint",
) -> ConvertedModel:
    """Map the original's state dict onto our variables; raise unless every key is accounted for.

    With ``allow_partial`` the leaves the checkpoint does not provide keep their random
    initialisation (used to start training from a backbone-only checkpoint).
    """
    abstract = abstract_variables(model_cfg)
    shapes = target_shapes_of(abstract)
    flat, report = apply_rules(
        ov2seg_rules(model_cfg), state_dict, shapes, ignored_source_keys(state_dict.keys())
    )
    if not report.ok and not allow_partial:
        raise ConversionError(
            f"{source} does not match the model of this config:\n"
            f"{report.format()}\n(set convert.allow_partial=True to write a "
            "partial checkpoint anyway)"
        )
    if report.unfilled_targets:
        init = build_model(model_cfg).init(
            jax.random.key(0),
            jnp.zeros((1, 64, 64, 3)),
            jnp.zeros((2, model_cfg.decoder.text_embed_dim)),
        )
        init_flat = {k: np.asarray(v) for k, v in flatten_paths(init).items()}
        for k in report.unfilled_targets:
            flat[k] = init_flat[k]
    variables = unflatten_paths(flat)
    return ConvertedModel(variables, classifier_from_state_dict(state_dict), report)


def convert_checkpoint(
    path: str, model_cfg: ml_collections.ConfigDict | None, *, allow_partial: bool = False
) -> tuple[ConvertedModel, ml_collections.ConfigDict]:
    """Read ``path`` (.pth/.pkl) and convert it (see :func:`convert_state_dict`).

    ``model_cfg=None`` reads the architecture off the checkpoint. Returns the converted model and
    the ``config.model`` it was converted for.
    """
    from ov2seg_jax.convert.infer_config import infer_model_config

    state = load_state_dict(path)
    if model_cfg is None:
        model_cfg = infer_model_config(state)
    converted = convert_state_dict(state, model_cfg, allow_partial=allow_partial, source=path)
    return converted, model_cfg
