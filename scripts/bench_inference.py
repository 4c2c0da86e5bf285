"""Inference speed of OV2Seg (network only, one window of frames) at 480p, per backbone.

    python scripts/bench_inference.py                      # R50 and Swin-B, 480x864, window 10
    python scripts/bench_inference.py --models r50 --frames 2 --repeats 2

Random weights (speed does not depend on them), the released head (100 queries, 1196 classes),
one jitted call per window as the predictor makes it. Prints compile time and the median of the
timed runs per frame next to the PyTorch original's anchor on the project's 2-core CPU machine
(shared/notes/performance.md), which is comparable only on that machine kind.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from configs import ov2seg_r50_lvvis, ov2seg_swinb_lvvis  # noqa: E402
from ov2seg_jax.models.ov2seg import build_model  # noqa: E402
from ov2seg_jax.models.preprocess import normalize_and_pad  # noqa: E402

CONFIGS = {"r50": ov2seg_r50_lvvis, "swinb": ov2seg_swinb_lvvis}
# The original (PyTorch, 2 CPU threads, 480x864, window of 10): seconds per frame.
ORIGINAL_CPU_S_PER_FRAME = {"r50": 2.67, "swinb": 4.36}


def bench(name: str, frames: int, height: int, width: int, repeats: int) -> dict:
    cfg = CONFIGS[name].get_config()
    model = build_model(cfg.model)
    rng = np.random.default_rng(0)
    images = normalize_and_pad(rng.integers(0, 256, (frames, height, width, 3), np.uint8))
    text = jnp.asarray(rng.standard_normal((cfg.model.num_classes, 512)), jnp.float32)
    variables = jax.jit(model.init)(jax.random.key(0), images[:1], text)

    @jax.jit
    def forward(v, x, t):
        out = model.apply(v, x, t)
        return out.pred_logits, out.pred_object_logits, out.pred_masks, out.pred_embds

    start = time.perf_counter()
    jax.block_until_ready(forward(variables, images, text))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(forward(variables, images, text))
        times.append(time.perf_counter() - start)
    per_frame = statistics.median(times) / frames
    return {
        "model": name,
        "input": f"{frames}x{images.shape[1]}x{images.shape[2]}",
        "compile_s": compile_s,
        "s_per_frame": per_frame,
        "fps": 1.0 / per_frame,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="r50,swinb")
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=864)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    dev = jax.devices()[0]
    print(
        f"device: {dev.platform} {dev.device_kind}; host {platform.processor() or platform.machine()}"
        f", {os.cpu_count()} CPUs; jax {jax.__version__}"
    )
    print(
        f"{'model':<6} {'input (T x H x W)':<18} {'compile s':>9} {'s/frame':>9} {'frames/s':>9}"
        f" {'original CPU s/frame':>21} {'speed-up':>9}"
    )
    for name in args.models.split(","):
        r = bench(name, args.frames, args.height, args.width, args.repeats)
        anchor = ORIGINAL_CPU_S_PER_FRAME[name]
        speedup = f"{anchor / r['s_per_frame']:.2f}x" if dev.platform == "cpu" else "n/a"
        print(
            f"{r['model']:<6} {r['input']:<18} {r['compile_s']:>9.1f} {r['s_per_frame']:>9.3f}"
            f" {r['fps']:>9.2f} {anchor:>21.2f} {speedup:>9}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
