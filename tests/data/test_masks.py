"""Segmentation decoding (ov2seg_jax.data.masks): polygons, compressed and uncompressed RLE."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from ov2seg_jax.data.masks import SegmentationError, decode_segmentation


def _box(h=6, w=8):
    m = np.zeros((h, w), np.uint8)
    m[1:4, 2:7] = 1
    return m


def test_rle_compressed_str_bytes_and_uncompressed():
    m = _box()
    rle = mask_utils.encode(np.asfortranarray(m))
    as_str = {"size": [6, 8], "counts": rle["counts"].decode("ascii")}
    np.testing.assert_array_equal(decode_segmentation(as_str, 6, 8), m)
    np.testing.assert_array_equal(decode_segmentation(rle, 6, 8), m)
    # Uncompressed: run lengths in column-major order, starting with zeros.
    flat = m.flatten(order="F")
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    np.testing.assert_array_equal(decode_segmentation({"size": [6, 8], "counts": runs}, 6, 8), m)


def test_polygons_are_merged_and_degenerate_ones_ignored():
    # Two squares x in [0, 2), [4, 6) on rows [0, 2); pycocotools fills the half-open box exactly.
    polys = [[0, 0, 2, 0, 2, 2, 0, 2], [4, 0, 6, 0, 6, 2, 4, 2], [1, 1, 2, 2]]
    m = decode_segmentation(polys, 4, 8)
    expected = np.zeros((4, 8), np.uint8)
    expected[0:2, 0:2] = 1
    expected[0:2, 4:6] = 1
    np.testing.assert_array_equal(m, expected)


def test_bad_segmentations_raise_a_named_error():
    with pytest.raises(SegmentationError, match="frame size"):
        decode_segmentation({"size": [5, 8], "counts": "abc"}, 6, 8)
    with pytest.raises(SegmentationError, match="3 points"):
        decode_segmentation([[0, 0, 1, 1]], 6, 8)
    with pytest.raises(SegmentationError, match="unsupported"):
        decode_segmentation(3, 6, 8)


def test_malformed_values_inside_a_segmentation_raise_a_named_error():
    with pytest.raises(SegmentationError, match="cannot decode"):
        decode_segmentation([["a", "b", "c", "d", "e", "f"]], 6, 8)
