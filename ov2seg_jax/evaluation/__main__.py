"""Score a results file against ground truth from the command line.

    python -m ov2seg_jax.evaluation --gt val_instances.json --results results.json --out stats.json
    python -m ov2seg_jax.evaluation --gt image_val_instances.json --results segm.json --kind image

Video ground truth (``videos`` in the file) gives the official LV-VIS numbers: the 12 standard
statistics overall, for base and for novel categories (overall only when the categories carry no
``partition``, as in YouTube-VIS and OVIS); ``--out`` writes
``{"stats": [12], "stats_base": [12], "stats_novel": [12]}`` (-1.0 where a number cannot be
computed, so all of base/novel without partitions). Image ground truth (``images``) runs LVISEval and/or COCOeval and writes
``{"lvis": {13 numbers}, "coco": [12]}``.

Bad input ends with exit status 2 and one line naming the file and the field at fault.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from .errors import EvalInputError
from .image_ap import evaluate_image
from .json_input import read_json
from .video_ap import evaluate_video
from .video_gt import load_video_gt

KINDS = ("video", "image", "image-coco", "image-lvis")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ov2seg_jax.evaluation",
        description="Video AP (LV-VIS/YouTube-VIS/OVIS) or image mask AP.",
    )
    p.add_argument("--gt", required=True, help="ground-truth JSON")
    p.add_argument("--results", required=True, help="results JSON (a list)")
    p.add_argument(
        "--kind",
        choices=KINDS,
        help="default: video if the GT has 'videos', else image (LVIS and COCO)",
    )
    p.add_argument("--out", help="write the statistics as JSON here")
    p.add_argument(
        "--semantics",
        choices=("lvvis", "ytvis"),
        default="lvvis",
        help="video: lvvis = the official LV-VIS evaluator (default); ytvis = its "
        "YouTube-VIS variant (crowd GT ignored, no int() of GT areas)",
    )
    p.add_argument(
        "--drop-unknown-categories",
        action="store_true",
        help="drop results whose category is not in the GT (the official tools do "
        "this silently) instead of failing",
    )
    p.add_argument(
        "--strict-frames",
        action="store_true",
        help="video: fail when a result's 'segmentations' length differs from its "
        "video's (the official evaluator pairs frames up to the shorter list)",
    )
    p.add_argument("--workers", type=int, default=None, help="processes reading the results")
    p.add_argument(
        "--official-summary",
        action="store_true",
        help="video: also print the summary lines exactly as the LV-VIS tool does",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    return p


def run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Evaluate; returns the JSON to write and the text to print."""
    unknown = "drop" if args.drop_unknown_categories else "error"
    kind = args.kind
    gt_data = read_json(args.gt)
    if kind is None:
        if isinstance(gt_data, dict) and "videos" in gt_data:
            kind = "video"
        elif isinstance(gt_data, dict) and "images" in gt_data:
            kind = "image"
        else:
            raise EvalInputError(
                args.gt,
                None,
                "neither 'videos' nor 'images' found: not a video or image ground-truth file",
            )
    tic = time.perf_counter()
    if kind == "video":
        gt = load_video_gt(gt_data, args.semantics, source=args.gt)
        del gt_data
        res = evaluate_video(
            gt,
            args.results,
            semantics=args.semantics,
            on_unknown_category=unknown,
            frame_count="error" if args.strict_frames else "zip",
            workers=args.workers,
        )
        for w in res.warnings:
            print(f"warning: {w}", file=sys.stderr)
        if res.mask_size_warnings:
            print(
                f"warning: {res.mask_size_warnings} (prediction, GT) pair(s) have an empty union "
                "(the official 'Mask sizes ... may not match!'); their IoU is 0",
                file=sys.stderr,
            )
        text = res.format_table(title=f"video AP ({args.semantics}) of {args.results}")
        if args.official_summary:
            text += "\n" + "\n".join(res.official_summary_lines())
        out = res.to_json()
        out = {k: out[k] for k in ("stats", "stats_base", "stats_novel")}
    else:
        kinds = {"image": ("lvis", "coco"), "image-coco": ("coco",), "image-lvis": ("lvis",)}[kind]
        res_img = evaluate_image(gt_data, args.results, kinds=kinds, on_unknown_category=unknown)
        text = res_img.format_table(title=f"image mask AP of {args.results}")
        out = res_img.to_json()
    print(f"evaluated in {time.perf_counter() - tic:.2f} s", file=sys.stderr)
    return out, text


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        out, text = run(args)
    except EvalInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - one line unless --debug
        if args.debug:
            raise
        print(
            f"error: unexpected {type(err).__name__}: {err} (rerun with --debug for details)",
            file=sys.stderr,
        )
        return 3
    if args.out:
        folder = os.path.dirname(os.path.abspath(args.out))
        os.makedirs(folder, exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    try:
        print(text, flush=True)
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
