"""COCO segmentations (polygons, compressed or uncompressed RLE) to binary masks via pycocotools."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from ov2seg_jax.data.records import Segmentation


class SegmentationError(ValueError):
    """A segmentation that cannot be decoded at the given frame size."""


def valid_polygons(polygons: list) -> list:
    """Polygons with an even number of coordinates and at least three points (as the original)."""
    return [p for p in polygons if len(p) % 2 == 0 and len(p) >= 6]


def decode_segmentation(seg: Segmentation, height: int, width: int) -> np.ndarray:
    """One instance's segmentation -> uint8 mask (height, width), 1 inside.

    Polygons are merged (union); an RLE must have ``size == [height, width]``. Anything
    pycocotools cannot decode raises :class:`SegmentationError`.
    """
    try:
        return _decode(seg, height, width)
    except SegmentationError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as e:
        raise SegmentationError(f"cannot decode segmentation: {e}") from e


def _decode(seg: Segmentation, height: int, width: int) -> np.ndarray:
    if isinstance(seg, dict):
        if "counts" not in seg or "size" not in seg:
            raise SegmentationError("RLE lacks 'counts' or 'size'")
        if [int(s) for s in seg["size"]] != [height, width]:
            raise SegmentationError(f"RLE size {seg['size']} != frame size {[height, width]}")
        rle = seg
        if isinstance(seg["counts"], list):
            rle = mask_utils.frPyObjects(seg, height, width)
        elif isinstance(seg["counts"], str):
            rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
        return mask_utils.decode(rle).astype(np.uint8)
    if isinstance(seg, list):
        polys = valid_polygons(seg)
        if not polys:
            raise SegmentationError("no polygon with at least 3 points")
        rles = mask_utils.frPyObjects([[float(v) for v in p] for p in polys], height, width)
        return mask_utils.decode(mask_utils.merge(rles)).astype(np.uint8)
    raise SegmentationError(f"unsupported segmentation type {type(seg).__name__}")
