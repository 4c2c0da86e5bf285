"""Reading one training example from disk: frame choice, JPEG decoding, mask decoding.

Bad files (missing, unreadable, of another size than annotated) raise :class:`ExampleError`
naming the file; the pipeline counts them and substitutes another record, so one broken file
never stops a run deep inside tf.data.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from ov2seg_jax.data.frame_files import open_frame
from ov2seg_jax.data.masks import SegmentationError, decode_segmentation
from ov2seg_jax.data.records import ProblemTally, TrainRecord


class ExampleError(RuntimeError):
    """An example that cannot be loaded; ``kind`` names the problem for the tally."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def sample_clip_frames(
    num_frames: int, clip_length: int, frame_range: int, rng: np.random.Generator
) -> list[int]:
    """Frame indices of a training clip, as the original's video mapper draws them.

    A reference frame uniformly, then ``clip_length - 1`` more drawn with replacement from the
    frames within ``frame_range`` of it (excluding it), sorted. A one-frame video repeats it.
    """
    ref = int(rng.integers(num_frames))
    if clip_length == 1:
        return [ref]
    lo, hi = max(0, ref - frame_range), min(num_frames, ref + frame_range + 1)
    pool = [i for i in range(lo, hi) if i != ref]
    if not pool:
        return [ref] * clip_length
    others = rng.choice(np.asarray(pool), clip_length - 1).tolist()
    return sorted([*others, ref])


def read_frame(path: str, height: int, width: int) -> np.ndarray:
    """RGB uint8 (height, width, 3); ExampleError when missing, corrupt or of another size.

    The EXIF orientation is applied, as detectron2's ``read_image`` does.
    """
    try:
        with Image.open(open_frame(path)) as im:
            rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except FileNotFoundError as e:
        raise ExampleError("missing_image", f"image file not found: {path}") from e
    except (OSError, ValueError, SyntaxError) as e:
        raise ExampleError("unreadable_image", f"cannot decode image {path}: {e}") from e
    if rgb.shape[:2] != (height, width):
        raise ExampleError(
            "size_mismatch",
            f"{path} is {rgb.shape[1]}x{rgb.shape[0]} but annotated as {width}x{height}",
        )
    return rgb


def load_example(
    record: TrainRecord, frame_indices: list[int], tally: ProblemTally | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames uint8 (T, H, W, 3), masks uint8 (T, N, H, W), labels int32 (N,).

    ``N`` counts every track of the record; a track absent from a frame has an empty mask there,
    and so has a segmentation that cannot be decoded (counted in ``tally`` as
    ``bad_segmentation``; the instance is then dropped as empty).
    """
    h, w = record.height, record.width
    frames = np.stack([read_frame(record.frame_paths[t], h, w) for t in frame_indices])
    n = len(record.instances)
    masks = np.zeros((len(frame_indices), n, h, w), np.uint8)
    for j, track in enumerate(record.instances):
        for i, t in enumerate(frame_indices):
            seg = track.segmentations[t]
            if seg is None:
                continue
            try:
                masks[i, j] = decode_segmentation(seg, h, w)
            except SegmentationError as e:
                if tally is not None:
                    where = f"record {record.record_id} ({record.frame_paths[t]}), instance {j}"
                    tally.add("bad_segmentation", f"{where}: {e}")
    labels = np.asarray([t.category for t in record.instances], np.int32)
    return frames, masks, labels
