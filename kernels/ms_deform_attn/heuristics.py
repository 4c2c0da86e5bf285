"""Launch parameters of the Pallas kernels: one frozen dataclass and a rule per problem size.

The rules are deliberately simple and documented next to the numbers, so a measurement that
disagrees can change them in one place. Callers may always pass their own :class:`BlockSizes`.
"""

from __future__ import annotations

import dataclasses

from kernels.ms_deform_attn.shapes import SpatialShapes


@dataclasses.dataclass(frozen=True)
class BlockSizes:
    """Tile sizes of the MSDA kernels.

    Attributes:
      rows: (query, head) rows per GPU program, a power of two. Each row owns a (rows, D) float32
        accumulator and issues L*P*4 gathers of D contiguous values.
      num_warps, num_stages: Triton launch parameters of the GPU kernels.
      queries: queries per TPU program (a multiple of 8, the sublane count).
      pixels: pixels per one-hot chunk on TPU: the (queries, pixels) interpolation matrix is built
        on the VPU and multiplied on the MXU one chunk at a time, bounding its VMEM footprint.
      vmem_limit_bytes: scoped VMEM the TPU kernels may use (a level's values stay resident).
    """

    rows: int = 64
    num_warps: int = 4
    num_stages: int = 1
    queries: int = 128
    pixels: int = 2048
    vmem_limit_bytes: int = 48 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.rows <= 0 or self.rows & (self.rows - 1):
            raise ValueError(f"BlockSizes.rows must be a positive power of two, got {self.rows}")
        if self.queries <= 0 or self.queries % 8:
            raise ValueError(
                f"BlockSizes.queries must be a positive multiple of 8, got {self.queries}"
            )
        if self.pixels <= 0 or self.pixels % 128:
            raise ValueError(
                f"BlockSizes.pixels must be a positive multiple of 128, got {self.pixels}"
            )


def next_power_of_two(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def gpu_block_sizes(num_rows: int, head_dim: int) -> BlockSizes:
    """GPU tiles for ``num_rows`` = N*Lq*M (query, head) rows of width ``head_dim``.

    About 2048 accumulator elements per program (64 rows at D=32: 16 float32 registers per thread
    with 4 warps) leaves room for the gathered tiles; never more rows than the problem has.
    """
    width = next_power_of_two(head_dim)
    rows = max(16, min(128, 2048 // width))
    rows = min(rows, max(16, next_power_of_two(num_rows)))
    return BlockSizes(rows=rows, num_warps=4 if width <= 64 else 8)


def tpu_block_sizes(num_queries: int, spatial_shapes: SpatialShapes) -> BlockSizes:
    """TPU tiles: 128 queries (one MXU pass) unless the problem is smaller, and one-hot chunks
    no wider than the largest level (rounded up to a lane multiple), at most 2048 pixels."""
    queries = min(128, -(-num_queries // 8) * 8)
    widest = max(h * w for h, w in spatial_shapes)
    pixels = min(2048, -(-widest // 128) * 128)
    return BlockSizes(queries=queries, pixels=pixels)
