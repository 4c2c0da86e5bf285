"""Evaluation: video AP (LV-VIS / YouTube-VIS / OVIS), image AP (COCO / LVIS), submissions.

``evaluate_video`` reproduces the official LV-VIS evaluator's numbers (base/novel included);
``evaluate_image`` runs pycocotools' COCOeval and lvis' LVISEval; ``write_submission`` packs a
results list the way the evaluation servers take it. ``python -m ov2seg_jax.evaluation`` scores
files from the command line.
"""

from .errors import EvalInputError
from .image_ap import ImageEvalResult, evaluate_image
from .submission import write_submission
from .summary import STAT_NAMES
from .video_ap import VideoEvalResult, evaluate_video

__all__ = [
    "STAT_NAMES",
    "EvalInputError",
    "ImageEvalResult",
    "VideoEvalResult",
    "evaluate_image",
    "evaluate_video",
    "write_submission",
]
