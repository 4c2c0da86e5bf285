"""AdamW with per-parameter rules, the original's full-model gradient clipping, and its schedule.

**Rules are config data** (``config.optimizer.rules``): a sequence of
``(pattern, lr_mult, weight_decay, reason)``. A parameter's ``/``-joined path (e.g.
``pixel_decoder/encoder_layers_0/norm1/scale``) takes the values of the **first** rule whose
pattern ``re.fullmatch``-es it; its learning rate is ``base_lr * lr_mult`` (times the schedule),
its decoupled weight decay ``weight_decay``. Every parameter must be caught by some rule and every
rule must catch some parameter; either failure is an error that names the paths or the rule.
``--mode train`` writes the whole table (path, shape, lr, weight decay, rule) to
``WORKDIR/train/optimizer_rules.tsv`` and prints one line per rule.

The LVIS recipes' tables (``configs/ov2seg_r50_lvvis.py``, ``configs/ov2seg_swinb_lvvis.py``)
reproduce the original's own optimizer builder (``train_net.Trainer.build_optimizer``): lr x0.1
for every parameter of a module whose name contains ``backbone``; no weight decay for the
parameters of ``LayerNorm``/``GroupNorm`` and ``nn.Embedding`` modules (the decoder's
``query_feat``, ``query_embed``, ``level_embed``) and for Swin's position tables; weight decay
0.05 for everything else, biases included (that builder has no bias rule), and for the pixel
decoder's ``level_embed``, a bare ``nn.Parameter``.

**Clipping** is the original's ``full_model`` type: ``torch.nn.utils.clip_grad_norm_`` over all
gradients together, i.e. the L2 norm of the per-tensor L2 norms and every gradient multiplied by
``min(max_norm / (norm + 1e-6), 1)`` formed in float32 (optax's ``clip_by_global_norm`` has no
``1e-6``). AdamW is ``optax.adamw`` (decoupled decay; algebraically torch's update). The
learning rate follows detectron2's ``WarmupMultiStepLR``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import traverse_util

RULES_TABLE_FILE = "optimizer_rules.tsv"

# torch.nn.utils.clip_grad_norm_'s guard in the coefficient's denominator.
CLIP_EPS = 1e-6


class OptimizerRulesError(ValueError):
    """The rule table is malformed, leaves a parameter uncovered, or has a rule that is unused."""


@dataclasses.dataclass(frozen=True)
class ParamRule:
    """Parameters whose path ``re.fullmatch``-es ``pattern`` get ``lr_mult`` and ``weight_decay``."""

    pattern: str
    lr_mult: float
    weight_decay: float
    reason: str


@dataclasses.dataclass(frozen=True)
class Hyperparams:
    """What one parameter gets: its lr multiplier, weight decay and the rule that decided."""

    lr_mult: float
    weight_decay: float
    rule: str


def parse_rules(raw) -> tuple[ParamRule, ...]:
    """``config.optimizer.rules`` -> rules; a malformed entry is an error naming it."""
    if raw is None or isinstance(raw, str) or not isinstance(raw, Sequence) or not raw:
        raise OptimizerRulesError(
            "config.optimizer.rules must be a non-empty sequence of "
            "(pattern, lr_mult, weight_decay, reason)"
        )
    rules = []
    for i, entry in enumerate(raw):
        if isinstance(entry, str) or not isinstance(entry, Sequence) or len(entry) != 4:
            raise OptimizerRulesError(
                f"config.optimizer.rules[{i}] = {entry!r} is not (pattern, lr_mult, "
                "weight_decay, reason)"
            )
        pattern, lr_mult, wd, reason = entry
        try:
            re.compile(pattern)
        except (re.error, TypeError) as e:
            raise OptimizerRulesError(
                f"config.optimizer.rules[{i}] pattern {pattern!r} is not a regex ({e})"
            ) from None
        for name, value in (("lr_mult", lr_mult), ("weight_decay", wd)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise OptimizerRulesError(
                    f"config.optimizer.rules[{i}] ({pattern!r}) {name} must be a number >= 0, "
                    f"got {value!r}"
                )
        rules.append(ParamRule(str(pattern), float(lr_mult), float(wd), str(reason)))
    return tuple(rules)


def assign_hyperparams(params, rules: Sequence[ParamRule]) -> dict[str, Hyperparams]:
    """Per-parameter hyper-parameters keyed by ``/``-joined path (first fullmatch wins).

    Raises :class:`OptimizerRulesError` naming the uncovered paths or the rules that match nothing.
    """
    compiled = [(re.compile(r.pattern), r) for r in rules]
    out, used, uncovered = {}, set(), []
    for path in traverse_util.flatten_dict(params, sep="/"):
        for regex, rule in compiled:
            if regex.fullmatch(path):
                out[path] = Hyperparams(rule.lr_mult, rule.weight_decay, rule.pattern)
                used.add(rule.pattern)
                break
        else:
            uncovered.append(path)
    if uncovered:
        raise OptimizerRulesError(
            f"config.optimizer.rules cover no rule for {len(uncovered)} parameter(s): "
            + ", ".join(uncovered[:8])
            + (" ..." if len(uncovered) > 8 else "")
        )
    unused = [r.pattern for r in rules if r.pattern not in used]
    if unused:
        raise OptimizerRulesError(
            "config.optimizer.rules: rule(s) matching no parameter of this model: "
            + ", ".join(repr(p) for p in unused)
        )
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


def global_grad_norm(grads) -> jax.Array:
    """The L2 norm of the per-tensor L2 norms, in float32 (``clip_grad_norm_``'s total norm)."""
    norms = [jnp.linalg.norm(g.astype(jnp.float32).ravel()) for g in jax.tree.leaves(grads)]
    return jnp.linalg.norm(jnp.stack(norms))


def clip_coefficient(total_norm: jax.Array, max_norm: float) -> jax.Array:
    """``min(max_norm / (total_norm + 1e-6), 1)`` in float32, as torch forms it."""
    coef = jnp.float32(max_norm) / (total_norm.astype(jnp.float32) + jnp.float32(CLIP_EPS))
    return jnp.minimum(coef, jnp.float32(1.0))


def clip_full_model(max_norm: float) -> optax.GradientTransformation:
    """Multiply every gradient by :func:`clip_coefficient` of their global norm."""

    def update(updates, state, params=None):
        del params
        coef = clip_coefficient(global_grad_norm(updates), max_norm)
        return jax.tree.map(lambda g: (g * coef).astype(g.dtype), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _group_name(h: Hyperparams) -> str:
    return f"lr_x{h.lr_mult:g}_wd{h.weight_decay:g}"


def make_optimizer(
    opt: ml_collections.ConfigDict, params
) -> tuple[optax.GradientTransformation, dict[str, Hyperparams]]:
    """Full-model clipping, then AdamW per hyper-parameter group. Returns (tx, per-path table)."""
    table = assign_hyperparams(params, parse_rules(opt.rules))
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
        chain.append(clip_full_model(opt.clip_norm))
    chain.append(optax.multi_transform({n: group_tx(h) for n, h in groups.items()}, labels))
    return optax.chain(*chain), table


def format_rules_table(table: dict[str, Hyperparams], rules: Sequence[ParamRule]) -> str:
    """One line per rule, in rule order: pattern, lr multiplier, weight decay, tensors, reason."""
    counts = {r.pattern: 0 for r in rules}
    for h in table.values():
        counts[h.rule] += 1
    width = max(len(r.pattern) for r in rules)
    lines = [f"  {'rule (re.fullmatch, first wins)':<{width}}  lr_x   wd     tensors  reason"]
    for r in rules:
        lines.append(
            f"  {r.pattern:<{width}}  {r.lr_mult:<5g}{r.weight_decay:<7g}{counts[r.pattern]:>7}"
            f"  {r.reason}"
        )
    return "\n".join(lines)


def write_rules_table(table: dict[str, Hyperparams], params, base_lr: float, directory: str) -> str:
    """Write ``path  shape  numel  lr  weight_decay  rule`` for every parameter; returns the path."""
    shapes = {k: tuple(np.shape(v)) for k, v in traverse_util.flatten_dict(params, sep="/").items()}
    os.makedirs(directory, exist_ok=True)
    out = os.path.join(directory, RULES_TABLE_FILE)
    with open(out, "w") as f:
        f.write("path\tshape\tnumel\tlr\tweight_decay\trule\n")
        for path, h in table.items():
            shape = shapes[path]
            f.write(
                f"{path}\t{'x'.join(map(str, shape))}\t{math.prod(shape)}\t"
                f"{base_lr * h.lr_mult:.6g}\t{h.weight_decay:g}\t{h.rule}\n"
            )
    return out
