"""Time every MSDA implementation on OV2Seg's sizes and compare with the memory-traffic floor.

Usage (from the repository root)::

    python scripts/bench_msda.py                       # every compiled implementation, both sizes
    python scripts/bench_msda.py --batch 1 --shape inference_480x864_window10   # a CPU-sized run

One row per implementation x size x {fwd, fwd+bwd} x dtype: the median wall time over
``--repeats`` runs after a warm-up (compilation excluded), the bandwidth achieved by moving the
bytes that must move in that time, and the floor: those bytes divided by the device's memory
bandwidth (``DEVICE_BANDWIDTH``, or ``--bandwidth-gbs``). The bytes that must move are the inputs
read once and the results written once: forward reads value, locations and weights and writes the
output; forward+backward adds reading them again with the output cotangent and writing the three
gradients. Samples that hit the same pixel re-read it from cache, so the floor does not count the
gathers themselves.

The sizes are ``kernels.ms_deform_attn.shapes.BENCH_SHAPES``: inference (a window of 10 frames at
480x864, every token a query) and training (1024x1024, two images). By default only compiled
implementations run: the Pallas kernels in interpret mode (on CPU) measure the interpreter.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:  # the package need not be installed
    sys.path.insert(0, _REPO_ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from kernels.ms_deform_attn import available_implementations, ms_deform_attn  # noqa: E402
from kernels.ms_deform_attn.shapes import BENCH_SHAPES, MSDAShape, make_inputs  # noqa: E402

# Peak memory bandwidth in GB/s by ``device_kind`` prefix (vendor data sheets).
DEVICE_BANDWIDTH: dict[str, float] = {
    "NVIDIA H200": 4800.0,
    "NVIDIA H100 80GB HBM3": 3350.0,  # SXM
    "NVIDIA H100 PCIe": 2000.0,
    "NVIDIA H100": 3350.0,
    "NVIDIA A100-SXM4-80GB": 2039.0,
    "NVIDIA A100": 1555.0,
    "TPU v4": 1200.0,
    "TPU v5 lite": 819.0,
    "TPU v5e": 819.0,
    "TPU v5p": 2765.0,
    "TPU v5": 2765.0,
    "TPU v6 lite": 1640.0,
    "TPU v6e": 1640.0,
}

PASSES = ("fwd", "fwd+bwd")


@dataclasses.dataclass(frozen=True)
class Result:
    implementation: str
    shape: str
    pass_: str
    dtype: str
    median_s: float
    bytes_moved: int


def device_bandwidth(kind: str) -> float | None:
    """Peak GB/s of a ``device_kind``, longest matching prefix first; None if unknown."""
    for prefix in sorted(DEVICE_BANDWIDTH, key=len, reverse=True):
        if kind.startswith(prefix):
            return DEVICE_BANDWIDTH[prefix]
    return None


def bytes_moved(shape: MSDAShape, dtype: str, pass_: str) -> int:
    """Bytes that must cross memory: inputs read once, results written once (see module doc)."""
    item = jnp.dtype(dtype).itemsize
    value = int(np.prod(shape.value_shape)) * item
    locations = int(np.prod(shape.locations_shape)) * item
    weights = int(np.prod(shape.weights_shape)) * item
    output = int(np.prod(shape.output_shape)) * item
    forward = value + locations + weights + output
    if pass_ == "fwd":
        return forward
    # Backward: read the inputs and the output cotangent, write the three gradients.
    return forward + (value + locations + weights + output) + (value + locations + weights)


def _function(shape: MSDAShape, implementation: str, pass_: str):
    def core(value, locations, weights):
        return ms_deform_attn(
            value, shape.spatial_shapes, locations, weights, implementation=implementation
        )

    if pass_ == "fwd":
        return jax.jit(core)

    def forward_backward(value, locations, weights, cotangent):
        out, vjp = jax.vjp(core, value, locations, weights)
        return out, vjp(cotangent)

    return jax.jit(forward_backward)


def time_one(shape: MSDAShape, implementation: str, pass_: str, dtype: str, repeats: int) -> float:
    """Median seconds of ``repeats`` runs after one warm-up (which compiles)."""
    value, locations, weights = (jnp.asarray(a, dtype) for a in make_inputs(shape))
    args = [value, locations, weights]
    if pass_ == "fwd+bwd":
        cotangent = np.random.default_rng(1).standard_normal(shape.output_shape, np.float32)
        args.append(jnp.asarray(cotangent, dtype))
    fn = _function(shape, implementation, pass_)
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def format_results(results: list[Result], bandwidth_gbs: float | None, device: str) -> str:
    header = (
        f"{'implementation':<12} {'shape':<34} {'pass':<8} {'dtype':<9} {'median ms':>10} "
        f"{'GB/s':>8} {'floor ms':>9} {'x floor':>8} {'vs xla':>7}"
    )
    baseline = {
        (r.shape, r.pass_, r.dtype): r.median_s for r in results if r.implementation == "xla"
    }
    lines = [f"MSDA benchmark on {device}", header, "-" * len(header)]
    for r in results:
        achieved = r.bytes_moved / r.median_s / 1e9
        floor = r.bytes_moved / (bandwidth_gbs * 1e9) if bandwidth_gbs else None
        ref = baseline.get((r.shape, r.pass_, r.dtype))
        lines.append(
            f"{r.implementation:<12} {r.shape:<34} {r.pass_:<8} {r.dtype:<9} "
            f"{r.median_s * 1e3:>10.3f} {achieved:>8.2f} "
            + (
                f"{floor * 1e3:>9.3f} {r.median_s / floor:>8.1f}"
                if floor
                else f"{'n/a':>9} {'':>8}"
            )
            + (f" {ref / r.median_s:>6.2f}x" if ref else "")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [s.name for s in BENCH_SHAPES]
    parser.add_argument("--shape", action="append", choices=names, help="default: all")
    parser.add_argument(
        "--implementation",
        action="append",
        choices=available_implementations(),
        help="default: the compiled ones (xla; cpu on CPU; the Pallas kernel of a GPU/TPU)",
    )
    parser.add_argument(
        "--dtype", action="append", choices=("float32", "bfloat16"), help="default: both"
    )
    parser.add_argument("--pass", dest="passes", action="append", choices=PASSES)
    parser.add_argument("--batch", type=int, help="override every shape's batch size")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--bandwidth-gbs", type=float, help="device memory bandwidth for the floor")
    args = parser.parse_args(argv)

    backend = jax.default_backend()
    compiled = (
        tuple(name for name in available_implementations() if not name.startswith("pallas"))
        if backend == "cpu"
        else available_implementations()
    )
    implementations = tuple(args.implementation or compiled)
    shapes = [s for s in BENCH_SHAPES if not args.shape or s.name in args.shape]
    if args.batch:
        shapes = [
            dataclasses.replace(s, name=f"{s.name}/N={args.batch}", batch=args.batch)
            for s in shapes
        ]
    device = jax.devices()[0]
    kind = getattr(device, "device_kind", backend)
    bandwidth = args.bandwidth_gbs or device_bandwidth(kind)
    results = []
    for shape in shapes:
        for implementation in implementations:
            for pass_ in args.passes or PASSES:
                for dtype in args.dtype or ("float32", "bfloat16"):
                    median = time_one(shape, implementation, pass_, dtype, args.repeats)
                    results.append(
                        Result(
                            implementation,
                            shape.name,
                            pass_,
                            dtype,
                            median,
                            bytes_moved(shape, dtype, pass_),
                        )
                    )
                    print(
                        f"  {implementation} {shape.name} {pass_} {dtype}: {median * 1e3:.3f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
    label = f"{kind} ({backend}, jax {jax.__version__}"
    label += f", {bandwidth:g} GB/s)" if bandwidth else ", bandwidth unknown: floor n/a)"
    print(format_results(results, bandwidth, label))
    return 0


if __name__ == "__main__":
    sys.exit(main())
