"""Streaming prediction equals the batch path, keeps memory flat, and rejects bad frames."""

from __future__ import annotations

import gc
import os
import tracemalloc

import jax
import numpy as np
import pytest

from configs import tiny
from ov2seg_jax import checkpoint
from ov2seg_jax.inference.predictor import VideoPredictor, jitted_forward
from ov2seg_jax.inference.streaming import StreamingPredictor, encode_frame
from ov2seg_jax.models.ov2seg import build_model
from ov2seg_jax.parity.model_fixture import FixtureModel


def _assert_same(batch, streamed):
    """Same instances in the same order, identical masks, scores to float32 rounding."""
    np.testing.assert_array_equal(streamed.labels, batch.labels)
    np.testing.assert_array_equal(streamed.query_index, batch.query_index)
    np.testing.assert_allclose(streamed.scores, batch.scores, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(streamed.masks(), batch.masks)


@pytest.fixture(scope="module")
def small_predictor(fixtures_root):
    jax.config.update("jax_default_matmul_precision", "highest")
    fm = FixtureModel(os.path.join(fixtures_root, "ov2seg_small"))
    return VideoPredictor(
        fm.model,
        fm.converted.variables,
        fm.converted.classifier,
        window_size=10,
        top_k=50,
        size_divisibility=32,
    )


@pytest.fixture(scope="module")
def tiny_predictor(tiny_model_dir):
    cfg = tiny.get_config()
    from ov2seg_jax.convert.convert_ov2seg import abstract_variables

    variables = checkpoint.load_model(tiny_model_dir, abstract_variables(cfg.model))
    classifier = np.random.default_rng(1).standard_normal((3, 32)).astype(np.float32)
    return VideoPredictor(
        build_model(cfg.model),
        variables,
        classifier,
        window_size=4,
        top_k=10,
        size_divisibility=cfg.inference.size_divisibility,
    )


@pytest.mark.parametrize("cache_bytes", [1 << 30, 0], ids=["cached", "rerun"])
def test_streaming_equals_batch_on_the_12_frame_fixture(
    fixtures_root, small_predictor, cache_bytes
):
    frames = np.load(os.path.join(fixtures_root, "ov2seg_small", "long_clip.npz"))["frames"]
    batch = small_predictor.predict(frames, output_size=(96, 144))
    streamer = StreamingPredictor(small_predictor, cache_bytes=cache_bytes)
    streamed = streamer.predict(lambda: iter(frames), frames.shape[1:3], (96, 144))
    assert streamer.reran_network == (cache_bytes == 0)
    assert streamed.num_frames == 12 and len(streamed.scores) == 50
    _assert_same(batch, streamed)


def test_streaming_equals_batch_on_a_long_synthetic_video(tiny_predictor):
    """41 frames = 10 full windows of 4 and a padded one; the cache overflows midway."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (41, 40, 72, 3), np.uint8)
    batch = tiny_predictor.predict(frames, output_size=(50, 90))
    # Room for about three windows of outputs: pass 2 must rerun the network.
    streamer = StreamingPredictor(tiny_predictor, cache_bytes=3 * 4 * 8 * 10 * 18 * 4 + 4096)
    streamed = streamer.predict(lambda: iter(frames), (40, 72), (50, 90))
    assert streamer.reran_network
    _assert_same(batch, streamed)
    # Null exactly where a mask is empty.
    for k, segs in enumerate(streamed.segmentations):
        for t, seg in enumerate(segs):
            assert (seg is None) == (not batch.masks[k, t].any())


def test_one_compile_per_bucket_shared_across_videos_and_vocabularies(tiny_predictor):
    """Videos of any length whose frames pad to the same size, and a new vocabulary of the same
    size, run on the executable already compiled for that bucket."""
    forward = jitted_forward(tiny_predictor.model)
    rng = np.random.default_rng(2)
    tiny_predictor.predict(rng.integers(0, 256, (3, 40, 72, 3), np.uint8))
    compiled = forward._cache_size()
    for t, h, w in ((1, 40, 72), (9, 33, 70), (6, 64, 96)):  # all pad to 64x96
        tiny_predictor.predict(rng.integers(0, 256, (t, h, w, 3), np.uint8))
    other = VideoPredictor(
        tiny_predictor.model,
        tiny_predictor.variables,
        rng.standard_normal((3, 32)).astype(np.float32),
        window_size=4,
        top_k=10,
        size_divisibility=32,
    )
    StreamingPredictor(other, cache_bytes=1 << 30).predict(
        lambda: iter(np.zeros((5, 40, 72, 3), np.uint8)), (40, 72)
    )
    assert compiled >= 1 and other._forward is forward and forward._cache_size() == compiled


def test_memory_stays_flat_with_video_length(tiny_predictor):
    """Peak host allocations for 208 frames stay near those for 16 (the batch path would grow
    with every frame's Q masks); the 500-frame measurement is scripts/bench_streaming.py."""
    rng = np.random.default_rng(0)
    # The traced peak of one run varies by about 2 MB whatever its length (allocator and
    # collector timing); over 192 more frames the batch path would add 38 MB.
    frame = rng.integers(0, 256, (256, 384, 3), np.uint8)
    streamer = StreamingPredictor(tiny_predictor, cache_bytes=0)

    def peak(n: int) -> int:
        gc.collect()
        tracemalloc.start()
        streamer.predict(lambda: (frame for _ in range(n)), (256, 384))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    peak(4)  # compile first
    short, long = peak(16), peak(208)
    # What the batch path keeps per frame: the stride-4 mask logits of all 8 queries.
    per_frame_batch = 8 * 64 * 96 * 4
    # What grows here: the slot permutation and the frame's RLEs (the results themselves).
    assert (long - short) / 192 < 0.2 * per_frame_batch, (short, long)


def test_frames_smaller_than_the_stride_are_refused(tiny_predictor):
    streamer = StreamingPredictor(tiny_predictor, cache_bytes=1 << 30)
    frames = np.zeros((2, 16, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="40x16 .* smaller than the network stride 32"):
        streamer.predict(lambda: iter(frames), (16, 40))
    with pytest.raises(ValueError, match="no frames"):
        streamer.predict(lambda: iter(()), (32, 32))


def test_encode_frame_nulls_empty_masks():
    masks = np.zeros((2, 5, 6), bool)
    masks[1, 1:3, 2:5] = True
    rles = encode_frame(masks)
    assert rles[0] is None and isinstance(rles[1]["counts"], str)
    import pycocotools.mask as mask_util

    np.testing.assert_array_equal(mask_util.decode(rles[1]).astype(bool), masks[1])
