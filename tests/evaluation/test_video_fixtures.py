"""Video AP against the numbers of the official LV-VIS evaluator on every eval fixture case."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ov2seg_jax.evaluation import STAT_NAMES, evaluate_video

from .cases import eval_cases, load

TOL = 1e-12  # the reference numbers are float64; ours agree to the last bit on these fixtures


def _vec(stats: dict) -> np.ndarray:
    return np.array([stats[name] for name in STAT_NAMES])


@pytest.mark.parametrize("root,case", eval_cases("video"))
def test_official_numbers(root: str, case: dict) -> None:
    expected = load(root, case["expected"])["official"]
    res = evaluate_video(
        os.path.join(root, case["gt"]), os.path.join(root, case["pred"]), workers=1
    )
    np.testing.assert_allclose(res.stats, _vec(expected["stats"]), rtol=0, atol=TOL)
    np.testing.assert_allclose(res.stats_base, _vec(expected["stats_base"]), rtol=0, atol=TOL)
    np.testing.assert_allclose(res.stats_novel, _vec(expected["stats_novel"]), rtol=0, atol=TOL)
    assert res.official_summary_lines() == expected["printed_summary"]
    assert res.mask_size_warnings == expected["mask_size_warnings"]
    derived = expected["per_category_derived"]
    ours = res.per_category()
    for cat, values in derived.items():
        for key, value in values.items():
            assert abs(ours[int(cat)][key] - value) <= TOL, (cat, key)


@pytest.mark.parametrize("root,case", eval_cases("video"))
def test_ytvis_variant(root: str, case: dict) -> None:
    expected = load(root, case["expected"])["ytvis_api_variant"]
    res = evaluate_video(
        os.path.join(root, case["gt"]),
        os.path.join(root, case["pred"]),
        semantics="ytvis",
        workers=1,
    )
    np.testing.assert_allclose(res.stats, _vec(expected["stats"]), rtol=0, atol=TOL)


@pytest.mark.parametrize("root,case", eval_cases("video")[:1])
def test_in_memory_input_matches_files(root: str, case: dict) -> None:
    gt = load(root, case["gt"])
    results = load(root, case["pred"])
    a = evaluate_video(gt, results)
    b = evaluate_video(os.path.join(root, case["gt"]), os.path.join(root, case["pred"]))
    np.testing.assert_array_equal(a.stats, b.stats)
    np.testing.assert_array_equal(a.stats_base, b.stats_base)
