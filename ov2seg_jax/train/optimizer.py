"""AdamW with per-parameter learning-rate and weight-decay rules, and the step-decay schedule.

The rules mirror how Mask2Former (and so OV2Seg) builds its optimizer: every trainable parameter
gets the base learning rate and weight decay, then

===========================================  ==============================  ======================
parameter path (Flax)                        original module                 change
===========================================  ==============================  ======================
``backbone/...``                             anything under ``backbone``     lr x backbone_multiplier
``.../*norm*/...`` (``norm``, ``norm1``,     LayerNorm / GroupNorm           weight decay = weight_decay_norm
``decoder_norm``, ``*_norm``)
``predictor/{query_feat,query_embed,         ``nn.Embedding``                weight decay = weight_decay_embed
level_embed}``
``.../relative_position_bias_table``,        Swin position tables            weight decay 0
``.../absolute_pos_embed``
===========================================  ==============================  ======================

The pixel decoder's ``level_embed`` is a bare ``nn.Parameter`` in the original, not an embedding,
so it keeps the default weight decay. Frozen batch-norm statistics are not parameters at all.

Gradients are clipped by their global norm over the whole model (the original's "full_model"
clipping) before Adam. The learning rate follows detectron2's ``WarmupMultiStepLR``: linear warmup
from ``warmup_factor`` over ``warmup_iters`` steps, then x``gamma`` at each of ``decay_steps``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import traverse_util


@dataclasses.dataclass(frozen=True)
class ParamRule:
    """Parameters whose '/'-joined path matches ``pattern`` get ``lr_mult`` and/or ``weight_decay``.

    ``None`` leaves that field as earlier rules (or the defaults) set it; later rules win.
    """

    pattern: str
    lr_mult: float | None = None
    weight_decay: float | None = None
    reason: str = ""


def param_rules(opt: ml_collections.ConfigDict) -> tuple[ParamRule, ...]:
    """The rule table for ``config.optimizer`` (see the module docstring)."""
    return (
        ParamRule(r"^backbone/", lr_mult=opt.backbone_multiplier, reason="backbone"),
        ParamRule(
            r"/(relative_position_bias_table|absolute_pos_embed)$",
            weight_decay=0.0,
            reason="Swin position tables",
        ),
        ParamRule(r"(^|/)[^/]*norm\d*/", weight_decay=opt.weight_decay_norm, reason="norm layers"),
        ParamRule(
            r"^predictor/(query_feat|query_embed|level_embed)$",
            weight_decay=opt.weight_decay_embed,
            reason="embeddings",
        ),
    )


@dataclasses.dataclass(frozen=True)
class Hyperparams:
    lr_mult: float
    weight_decay: float


def assign_hyperparams(
    params, rules: Sequence[ParamRule], weight_decay: float
) -> dict[str, Hyperparams]:
    """Per-parameter hyper-parameters, keyed by '/'-joined path."""
    compiled = [(re.compile(r.pattern), r) for r in rules]
    out = {}
    for path in traverse_util.flatten_dict(params, sep="/"):
        lr_mult, wd = 1.0, weight_decay
        for regex, rule in compiled:
            if regex.search(path):
                lr_mult = rule.lr_mult if rule.lr_mult is not None else lr_mult
                wd = rule.weight_decay if rule.weight_decay is not None else wd
        out[path] = Hyperparams(lr_mult, wd)
    return out


def learning_rate_schedule(opt: ml_collections.ConfigDict) -> Callable[[jax.Array], jax.Array]:
    """detectron2's WarmupMultiStepLR (linear warmup) as a function of the step."""
    decay_steps = jnp.asarray(sorted(opt.decay_steps) or [-1], jnp.int32)
    has_decay = len(opt.decay_steps) > 0

    def schedule(step):
        step = jnp.asarray(step, jnp.int32)
        num_decays = jnp.sum(step >= decay_steps) if has_decay else 0
        factor = jnp.asarray(opt.gamma, jnp.float32) ** num_decays
        if opt.warmup_iters > 0:
            alpha = jnp.minimum(step, opt.warmup_iters) / opt.warmup_iters
            warm = opt.warmup_factor * (1.0 - alpha) + alpha
            factor = factor * jnp.where(step < opt.warmup_iters, warm, 1.0)
        return opt.base_lr * factor

    return schedule


def _group_name(h: Hyperparams) -> str:
    return f"lr_x{h.lr_mult:g}_wd{h.weight_decay:g}"


def make_optimizer(
    opt: ml_collections.ConfigDict, params
) -> tuple[optax.GradientTransformation, dict[str, Hyperparams]]:
    """Global-norm clipping, then AdamW per hyper-parameter group. Returns (tx, per-path table)."""
    table = assign_hyperparams(params, param_rules(opt), opt.weight_decay)
    schedule = learning_rate_schedule(opt)
    groups = {_group_name(h): h for h in table.values()}

    def group_tx(h: Hyperparams) -> optax.GradientTransformation:
        return optax.adamw(
            learning_rate=lambda step: schedule(step) * h.lr_mult,
            b1=opt.b1,
            b2=opt.b2,
            eps=opt.eps,
            weight_decay=h.weight_decay,
        )

    labels = traverse_util.unflatten_dict(
        {tuple(p.split("/")): _group_name(h) for p, h in table.items()}
    )
    chain = []
    if opt.clip_norm > 0:
        chain.append(optax.clip_by_global_norm(opt.clip_norm))
    chain.append(optax.multi_transform({n: group_tx(h) for n, h in groups.items()}, labels))
    return optax.chain(*chain), table


def format_rules_table(table: dict[str, Hyperparams]) -> str:
    """A summary: how many parameters (and numbers) fall in each hyper-parameter group."""
    counts: dict[str, int] = {}
    for h in table.values():
        counts[_group_name(h)] = counts.get(_group_name(h), 0) + 1
    return "\n".join(f"  {name:<24} {n:>5} tensors" for name, n in sorted(counts.items()))
