"""Image mask AP (the LV-VIS "oracle" splits, LVIS) through the reference tools themselves.

* COCO: pycocotools ``COCOeval`` (segm, maxDets 1/10/100) after removing ``bbox`` from the
  results, which is what detectron2's ``COCOEvaluator`` does for the LV-VIS oracle datasets.
* LVIS: ``lvis.LVISEval`` (segm) with ``LVISResults``' default 300 results per image.

Nothing is re-implemented; the only patch is numpy's ``np.float`` alias (removed in numpy 1.24,
still used by lvis 0.5.3), provided by :func:`numpy_float_alias` while lvis runs. Input is checked
first so that bad files give one clear error instead of a failure deep inside either tool.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import EvalInputError
from .json_input import read_json
from .summary import STAT_NAMES

# COCOeval reports the same 12 statistics, in the same order, as the video evaluator.
COCO_STAT_NAMES = STAT_NAMES
IMAGE_KINDS = ("lvis", "coco")


@contextlib.contextmanager
def numpy_float_alias() -> Iterator[None]:
    """Provide ``np.float`` (= ``float``) for code written for numpy < 1.24, then remove it."""
    added = "float" not in np.__dict__
    if added:
        np.float = float  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if added:
            del np.float  # type: ignore[attr-defined]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the tools' prints and log lines (the caller prints its own summary)."""
    logger = logging.getLogger("lvis")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


@dataclass
class ImageEvalResult:
    """``lvis``: the 13 numbers of ``LVISEval.results``; ``coco``: ``COCOeval.stats`` (12)."""

    lvis: dict[str, float] | None = None
    coco: list[float] | None = None

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        if self.lvis is not None:
            out["lvis"] = dict(self.lvis)
        if self.coco is not None:
            out["coco"] = list(self.coco)
        return out

    def format_table(self, title: str = "") -> str:
        rows = [title] if title else []
        if self.lvis is not None:
            rows.append("LVIS (LVISEval, segm, 300 per image)")
            rows += [f"  {k:<8}{v:>9.3f}" for k, v in self.lvis.items()]
        if self.coco is not None:
            rows.append("COCO (COCOeval, segm, maxDets 1/10/100)")
            rows += [f"  {k:<8}{v:>9.3f}" for k, v in zip(COCO_STAT_NAMES, self.coco, strict=True)]
        return "\n".join(rows)


def _check_gt(gt: Any, source: str, kinds: tuple[str, ...]) -> None:
    if not isinstance(gt, dict):
        raise EvalInputError(
            source, None, "expected a JSON object with images/annotations/categories"
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(gt.get(key), list):
            raise EvalInputError(source, key, "missing or not a list")
    need_img = ("id",) + (
        ("neg_category_ids", "not_exhaustive_category_ids") if "lvis" in kinds else ()
    )
    for i, img in enumerate(gt["images"]):
        for key in need_img:
            if not isinstance(img, dict) or key not in img:
                raise EvalInputError(source, f"images[{i}].{key}", "missing")
    need_cat = ("id",) + (("frequency",) if "lvis" in kinds else ())
    for i, cat in enumerate(gt["categories"]):
        for key in need_cat:
            if not isinstance(cat, dict) or key not in cat:
                raise EvalInputError(source, f"categories[{i}].{key}", "missing")
    need_ann = ("id", "image_id", "category_id", "segmentation", "area") + (
        ("iscrowd",) if "coco" in kinds else ()
    )
    for i, ann in enumerate(gt["annotations"]):
        for key in need_ann:
            if not isinstance(ann, dict) or key not in ann:
                raise EvalInputError(source, f"annotations[{i}].{key}", "missing")


def _check_results(results: Any, gt: dict, source: str, on_unknown_category: str) -> list[dict]:
    if not isinstance(results, list):
        raise EvalInputError(source, None, "expected a JSON list of results")
    if not results:
        raise EvalInputError(
            source, None, "the results list is empty (the reference tools fail on this)"
        )
    images = {img["id"] for img in gt["images"]}
    cats = {cat["id"] for cat in gt["categories"]}
    with_bbox = isinstance(results[0], dict) and "bbox" in results[0]
    kept = []
    for i, res in enumerate(results):
        where = f"[{i}]"
        if not isinstance(res, dict):
            raise EvalInputError(source, where, "expected an object")
        for key in ("image_id", "category_id", "segmentation", "score") + (
            ("bbox",) if with_bbox else ()
        ):
            if key not in res:
                raise EvalInputError(
                    source,
                    f"{where}.{key}",
                    "missing"
                    + (
                        " (the first result has a bbox, so LVISResults needs one on every result)"
                        if key == "bbox"
                        else ""
                    ),
                )
        if res["image_id"] not in images:
            raise EvalInputError(
                source,
                f"{where}.image_id",
                f"image id {res['image_id']!r} is not in the ground truth",
            )
        score = res["score"]
        if isinstance(score, bool) or not isinstance(score, int | float) or math.isnan(score):
            raise EvalInputError(source, f"{where}.score", f"expected a number, got {score!r}")
        seg = res["segmentation"]
        if not (isinstance(seg, dict) and isinstance(seg.get("counts"), str) and "size" in seg):
            raise EvalInputError(
                source, f"{where}.segmentation", "expected a compressed RLE {size, counts: str}"
            )
        if res["category_id"] not in cats:
            if on_unknown_category != "drop":
                raise EvalInputError(
                    source,
                    f"{where}.category_id",
                    f"category id {res['category_id']!r} is not in the ground "
                    "truth (--drop-unknown-categories drops such results, as "
                    "both reference tools do)",
                )
            continue
        kept.append(res)
    return kept


def evaluate_coco(gt: dict, results: list[dict]) -> list[float]:
    """pycocotools COCOeval (segm) on a checked GT dict and results list."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with _quiet():
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        dets = [{k: v for k, v in r.items() if k != "bbox"} for r in copy.deepcopy(results)]
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def evaluate_lvis(gt: dict, results: list[dict]) -> dict[str, float]:
    """lvis LVISEval (segm) on a checked GT dict and results list."""
    from lvis import LVIS, LVISEval

    class _LoadedLVIS(LVIS):
        def _load_json(self, path: Any) -> Any:
            return path if isinstance(path, dict) else super()._load_json(path)

    with _quiet(), numpy_float_alias():
        ev = LVISEval(_LoadedLVIS(copy.deepcopy(gt)), copy.deepcopy(results), "segm")
        ev.run()
    return {k: float(v) for k, v in ev.get_results().items()}


def evaluate_image(
    gt: dict | str | os.PathLike,
    results: list | str | os.PathLike,
    *,
    kinds: tuple[str, ...] = IMAGE_KINDS,
    on_unknown_category: str = "error",
) -> ImageEvalResult:
    """COCO and/or LVIS segm AP of image results (paths or parsed JSON)."""
    bad = [k for k in kinds if k not in IMAGE_KINDS]
    if bad or not kinds:
        raise ValueError(f"kinds must be taken from {IMAGE_KINDS}, got {kinds!r}")
    gt_source = "ground truth" if isinstance(gt, dict) else os.fspath(gt)
    res_source = "results" if isinstance(results, list) else os.fspath(results)
    gt_data = gt if isinstance(gt, dict) else read_json(gt)
    _check_gt(gt_data, gt_source, kinds)
    res_data = results if isinstance(results, list) else read_json(results)
    checked = _check_results(res_data, gt_data, res_source, on_unknown_category)
    if not checked:
        raise EvalInputError(res_source, None, "no result has a category of the ground truth")
    out = ImageEvalResult()
    for kind, run in (("lvis", evaluate_lvis), ("coco", evaluate_coco)):
        if kind not in kinds:
            continue
        try:
            value = run(gt_data, checked)
        except Exception as err:  # noqa: BLE001 - one line naming the tool and the fault
            raise EvalInputError(
                res_source,
                None,
                f"the {kind.upper()} evaluator failed on this input: {type(err).__name__}: {err}",
            ) from None
        setattr(out, kind, value)
    return out
