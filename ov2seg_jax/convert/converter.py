"""Apply a conversion table to a state dict, with a full report before anything is written.

The report lists every source key no rule used (and was not deliberately ignored), every target
leaf no rule filled, and every shape mismatch. A partial conversion is refused unless asked for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import flax.traverse_util
import jax
import numpy as np

from ov2seg_jax.convert.rules import TRANSFORMS, Rule


class ConversionError(ValueError):
    """The checkpoint does not fit the model; the message carries the report."""


@dataclasses.dataclass
class ConversionReport:
    converted: int = 0
    unused_source_keys: list[str] = dataclasses.field(default_factory=list)
    ignored_source_keys: dict[str, str] = dataclasses.field(default_factory=dict)
    missing_source_keys: list[str] = dataclasses.field(default_factory=list)  # rule -> absent key
    unfilled_targets: list[str] = dataclasses.field(default_factory=list)
    unknown_targets: list[str] = dataclasses.field(default_factory=list)  # rule -> no such leaf
    shape_mismatches: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.unused_source_keys
            or self.missing_source_keys
            or self.unfilled_targets
            or self.unknown_targets
            or self.shape_mismatches
        )

    def format(self, max_items: int = 20) -> str:
        lines = [
            f"converted {self.converted} tensors; {len(self.ignored_source_keys)} source keys "
            "ignored on purpose"
        ]

        def section(title: str, items: Sequence[str]):
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines.extend(f"  {x}" for x in list(items)[:max_items])
                if len(items) > max_items:
                    lines.append(f"  ... and {len(items) - max_items} more")

        section("shape mismatches", self.shape_mismatches)
        section("source keys no rule used", self.unused_source_keys)
        section("source keys the model needs but the checkpoint lacks", self.missing_source_keys)
        section("model leaves left unfilled", self.unfilled_targets)
        section("rules naming leaves the model does not have", self.unknown_targets)
        return "\n".join(lines)


def flatten_paths(tree: Mapping) -> dict[str, object]:
    """Nested dict -> ``{"a/b/c": leaf}``."""
    return {"/".join(k): v for k, v in flax.traverse_util.flatten_dict(dict(tree)).items()}


def apply_rules(
    rules: Sequence[Rule],
    state_dict: Mapping[str, np.ndarray],
    target_shapes: Mapping[str, tuple[int, ...]],
    ignored: Mapping[str, str] | None = None,
) -> tuple[dict[str, np.ndarray], ConversionReport]:
    """Make the flat ``{target path: array}`` and the report.

    ``target_shapes`` holds every leaf of the model (``jax.eval_shape`` of its init, flattened);
    ``ignored`` maps source keys deliberately left out to the reason.
    """
    report = ConversionReport(ignored_source_keys=dict(ignored or {}))
    out: dict[str, np.ndarray] = {}
    used: set[str] = set()
    for rule in rules:
        if rule.target not in target_shapes:
            report.unknown_targets.append(f"{rule.target} <- {rule.source}")
            continue
        if rule.source not in state_dict:
            report.missing_source_keys.append(f"{rule.source} (for {rule.target})")
            continue
        used.add(rule.source)
        try:
            value = TRANSFORMS[rule.transform](np.asarray(state_dict[rule.source]))
        except ValueError as e:
            report.shape_mismatches.append(f"{rule.source}: {e}")
            continue
        want = tuple(target_shapes[rule.target])
        if tuple(value.shape) != want:
            report.shape_mismatches.append(
                f"{rule.source} {tuple(state_dict[rule.source].shape)} -> {rule.target}: "
                f"got {tuple(value.shape)} after {rule.transform}, model expects {want}"
            )
            continue
        out[rule.target] = np.ascontiguousarray(value, dtype=np.float32)
        report.converted += 1
    report.unused_source_keys = sorted(
        k for k in state_dict if k not in used and k not in report.ignored_source_keys
    )
    report.unfilled_targets = sorted(t for t in target_shapes if t not in out)
    return out, report


def target_shapes_of(abstract_variables) -> dict[str, tuple[int, ...]]:
    """Flatten ``jax.eval_shape(model.init, ...)`` output to ``{path: shape}``."""
    flat = flatten_paths(jax.tree_util.tree_map(lambda x: x, dict(abstract_variables)))
    return {k: tuple(v.shape) for k, v in flat.items()}


def unflatten_paths(flat: Mapping[str, np.ndarray]) -> dict:
    return flax.traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})
