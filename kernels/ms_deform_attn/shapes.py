"""Problem sizes for the MSDA core shared by the tests and benchmarks, and their random inputs.

Keeping the sizes in one place means a kernel is tested on the shapes it is benchmarked on.
``TEST_SHAPES`` are small enough for a slow numpy oracle and for the Pallas kernels' interpret
mode; ``BENCH_SHAPES`` are the sizes OV2Seg's pixel decoder actually runs (levels at strides 32,
16, 8, coarse first, as the original orders them; every token is a query).
"""

from __future__ import annotations

import dataclasses

import numpy as np

SpatialShapes = tuple[tuple[int, int], ...]


@dataclasses.dataclass(frozen=True)
class MSDAShape:
    """One problem size; the array shapes follow ``ms_deform_attn``'s argument order."""

    name: str
    batch: int  # N
    num_queries: int  # Lq
    num_heads: int  # M
    head_dim: int  # D
    spatial_shapes: SpatialShapes
    num_points: int  # P
    loc_range: tuple[float, float] = (-0.1, 1.1)  # sampling locations are uniform in this range

    @property
    def num_levels(self) -> int:
        return len(self.spatial_shapes)

    @property
    def num_values(self) -> int:
        return sum(h * w for h, w in self.spatial_shapes)

    @property
    def value_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.num_values, self.num_heads, self.head_dim)

    @property
    def weights_shape(self) -> tuple[int, int, int, int, int]:
        return (self.batch, self.num_queries, self.num_heads, self.num_levels, self.num_points)

    @property
    def locations_shape(self) -> tuple[int, int, int, int, int, int]:
        return (*self.weights_shape, 2)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return (self.batch, self.num_queries, self.num_heads * self.head_dim)


def encoder_levels(height: int, width: int) -> SpatialShapes:
    """OV2Seg's encoder levels for a padded image: strides 32, 16, 8, coarse first."""
    return tuple((height // s, width // s) for s in (32, 16, 8))


def encoder_shape(
    name: str,
    height: int,
    width: int,
    batch: int,
    num_queries: int | None = None,
    loc_range: tuple[float, float] = (-0.1, 1.1),
) -> MSDAShape:
    """The pixel decoder's MSDA size (M=8, D=32, P=4); by default every token is a query."""
    levels = encoder_levels(height, width)
    queries = num_queries if num_queries is not None else sum(h * w for h, w in levels)
    return MSDAShape(name, batch, queries, 8, 32, levels, 4, loc_range)


TEST_SHAPES: tuple[MSDAShape, ...] = (
    # The real inference levels (15x27, 30x54, 60x108) with a handful of queries so the numpy
    # oracle and the Pallas kernels' interpret mode stay fast.
    encoder_shape("ov2seg_encoder_480x864", 480, 864, batch=1, num_queries=3),
    MSDAShape("single_level_outside", 1, 6, 2, 4, ((5, 7),), 3, loc_range=(-0.6, 1.6)),
    MSDAShape("four_levels_batch2", 2, 6, 2, 8, ((16, 12), (8, 6), (4, 3), (2, 2)), 2),
)

# Inference: one window of 10 frames at 480x864 runs as one batch. Training: 1024x1024 crops, two
# images per device (the global batch of 16 over 8 devices).
BENCH_SHAPES: tuple[MSDAShape, ...] = (
    encoder_shape("inference_480x864_window10", 480, 864, batch=10),
    encoder_shape("training_1024x1024_batch2", 1024, 1024, batch=2),
)


def make_inputs(shape: MSDAShape, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random float32 (value, sampling_locations, attention_weights) for ``shape``.

    Values are standard normal, locations uniform in ``shape.loc_range`` and attention weights a
    softmax over the L*P points of each (query, head), as the model produces them.
    """
    rng = np.random.default_rng(seed)
    value = rng.standard_normal(shape.value_shape, dtype=np.float32)
    low, high = shape.loc_range
    locations = rng.uniform(low, high, shape.locations_shape).astype(np.float32)
    points_per_head = shape.num_levels * shape.num_points
    logits = rng.standard_normal((*shape.weights_shape[:3], points_per_head), dtype=np.float32)
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    return value, locations, weights.reshape(shape.weights_shape).astype(np.float32)
