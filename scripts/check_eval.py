"""Check the evaluators against a folder of eval fixtures (the layout of shared/fixtures/eval).

    python scripts/check_eval.py                       # shared/fixtures/eval
    python scripts/check_eval.py /path/to/other/eval --tol 1e-12

Every case of ``index.json`` is run: video cases against ``official`` (12 stats, base, novel,
printed summary, warning count) and ``ytvis_api_variant``; image cases against ``lvis_api`` and
``coco_api``; video error cases must fail with a clean input error. Prints one line per case with
the largest absolute difference and exits 1 if any case is off.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from ov2seg_jax.evaluation import STAT_NAMES, EvalInputError, evaluate_image, evaluate_video
from ov2seg_jax.evaluation.image_ap import COCO_STAT_NAMES
from ov2seg_jax.parity.paths import fixtures_dir


def _load(root: str, rel: str) -> dict:
    with open(os.path.join(root, rel)) as f:
        return json.load(f)


def check_video(root: str, case: dict) -> tuple[float, list[str]]:
    exp = _load(root, case["expected"])
    gt, pred = os.path.join(root, case["gt"]), os.path.join(root, case["pred"])
    res = evaluate_video(gt, pred)
    notes, worst = [], 0.0
    for key in ("stats", "stats_base", "stats_novel"):
        want = np.array([exp["official"][key][n] for n in STAT_NAMES])
        got = getattr(res, key)
        if got is None:
            notes.append(f"{key} missing")
            continue
        worst = max(worst, float(np.abs(got - want).max()))
    if res.official_summary_lines() != exp["official"]["printed_summary"]:
        notes.append("printed summary differs")
    if res.mask_size_warnings != exp["official"]["mask_size_warnings"]:
        notes.append(
            f"warnings {res.mask_size_warnings} != {exp['official']['mask_size_warnings']}"
        )
    if "ytvis_api_variant" in exp:
        yt = evaluate_video(gt, pred, semantics="ytvis")
        want = np.array([exp["ytvis_api_variant"]["stats"][n] for n in STAT_NAMES])
        worst = max(worst, float(np.abs(yt.stats - want).max()))
    return worst, notes


def check_image(root: str, case: dict) -> tuple[float, list[str]]:
    exp = _load(root, case["expected"])
    res = evaluate_image(os.path.join(root, case["gt"]), os.path.join(root, case["pred"]))
    want_lvis = exp["lvis_api"]["results"]
    notes = [] if list(res.lvis) == list(want_lvis) else ["LVIS keys differ"]
    worst = max(abs(res.lvis[k] - v) for k, v in want_lvis.items())
    want_coco = [exp["coco_api"]["stats"][k] for k in COCO_STAT_NAMES]
    worst = max(worst, max(abs(a - b) for a, b in zip(res.coco, want_coco, strict=True)))
    return worst, notes


def check_error(root: str, case: dict) -> tuple[float, list[str]]:
    try:
        evaluate_video(os.path.join(root, case["gt"]), os.path.join(root, case["pred"]))
    except EvalInputError as err:
        return 0.0, [f"rejected: {str(err)[:90]}"]
    return float("inf"), ["accepted input the official evaluator fails on"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", nargs="?", default=os.path.join(fixtures_dir(), "eval"))
    p.add_argument("--tol", type=float, default=1e-12)
    args = p.parse_args()
    cases = _load(args.root, "index.json")["cases"]
    checkers = {"video": check_video, "image": check_image, "video_error": check_error}
    failed = 0
    for case in cases:
        tic = time.perf_counter()
        try:
            worst, notes = checkers[case["kind"]](args.root, case)
        except Exception as err:  # noqa: BLE001 - report and go on
            worst, notes = float("inf"), [f"{type(err).__name__}: {err}"]
        bad = worst > args.tol or any(n for n in notes if not n.startswith("rejected"))
        failed += bad
        print(
            f"{'FAIL' if bad else 'ok  '} {case['kind']:<11} {case['dataset']:<8} "
            f"{case['case']:<28} max|diff| {worst:.2e}  {time.perf_counter() - tic:5.2f}s  "
            + "; ".join(notes)
        )
    print(f"{len(cases) - failed}/{len(cases)} cases agree (tolerance {args.tol:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
