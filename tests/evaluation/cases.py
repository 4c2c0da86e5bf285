"""The eval fixture cases, discovered from ``index.json`` (none when the fixtures are absent)."""

from __future__ import annotations

import json
import os

import pytest

from ov2seg_jax.parity.paths import fixtures_dir

EVAL_ROOT = os.path.join(fixtures_dir(), "eval")


def eval_cases(kind: str) -> list:
    """pytest params ``(root, case)`` for every case of ``kind`` in the index."""
    index = os.path.join(EVAL_ROOT, "index.json")
    if not os.path.isfile(index):
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=f"no {index}"))]
    with open(index) as f:
        cases = json.load(f)["cases"]
    return [
        pytest.param(EVAL_ROOT, c, id=f"{c['dataset']}-{c['case']}")
        for c in cases
        if c["kind"] == kind
    ]


def load(root: str, rel: str) -> dict:
    with open(os.path.join(root, rel)) as f:
        return json.load(f)
