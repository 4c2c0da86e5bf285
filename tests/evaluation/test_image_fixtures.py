"""Image AP through LVISEval / COCOeval against the recorded numbers of the image fixtures."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ov2seg_jax.evaluation import evaluate_image
from ov2seg_jax.evaluation.image_ap import COCO_STAT_NAMES, numpy_float_alias

from .cases import eval_cases, load

# The recorded runs used numpy 1.23, whose float sums differ from numpy 2's in the last bit.
TOL = 1e-12


@pytest.mark.parametrize("root,case", eval_cases("image"))
def test_lvis_and_coco(root: str, case: dict) -> None:
    expected = load(root, case["expected"])
    res = evaluate_image(os.path.join(root, case["gt"]), os.path.join(root, case["pred"]))
    want = expected["lvis_api"]["results"]
    assert list(res.lvis) == list(want)
    np.testing.assert_allclose([res.lvis[k] for k in want], list(want.values()), rtol=0, atol=TOL)
    coco = [expected["coco_api"]["stats"][k] for k in COCO_STAT_NAMES]
    np.testing.assert_allclose(res.coco, coco, rtol=0, atol=TOL)


def test_float_alias_is_temporary() -> None:
    with numpy_float_alias():
        assert np.float is float
    assert "float" not in np.__dict__
