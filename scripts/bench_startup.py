"""Start-up of ``--mode predict``: how long a fresh process waits for its first window.

    python scripts/bench_startup.py --export            # R50, 4 frames of 480x864, windows of 2
    python scripts/bench_startup.py --models r50,swinb --runs 2 --window 10 --frames 20
    python scripts/bench_startup.py --models configs/tiny.py --height 64 --width 96

For each model: a model directory with random weights (filled with numpy from the variables'
shapes, as a converted checkpoint would be: no ``model.init``), a folder of frames and a fresh
persistent compilation cache; then ``--runs`` fresh processes of

    python -m ov2seg_jax.main --config CONFIG --mode predict --config.checkpoint.path=MODEL ...

one after the other. Each prints how long after its own start its first and second windows were
predicted; the start-up is the first less the time the second took: interpreter start, imports,
checkpoint restore, vocabulary, and the compile or the cache load, until the network starts on
frame 1. The first process compiles and fills the cache; the later ones are what a user pays for
every further video of that size. The table gives, per process: start-up, seconds a window,
first-window time, the whole process's wall time and its peak RSS. ``--window`` sets
``inference.window_size`` (2 by default: a short window keeps the noise of the window time, which
the start-up is computed with, small; the start-up itself hardly depends on it).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from bench_inference import CONFIG_FILES, load_config  # noqa: E402

FIRST_WINDOW = re.compile(
    r"first window predicted ([0-9.]+) s after the process started"
    r"(?: \(start-up ([0-9.-]+) s, then ([0-9.]+) s a window\))?"
)


def write_model_dir(cfg, directory: str, seed: int = 0) -> str:
    """A model directory for ``cfg`` (``config.model``) with random weights and classifier."""
    from ov2seg_jax import checkpoint
    from ov2seg_jax.convert.convert_ov2seg import random_variables

    variables = random_variables(cfg, seed, std=0.02)
    rng = np.random.default_rng(seed + 1)
    classifier = rng.standard_normal((cfg.num_classes, cfg.decoder.text_embed_dim))
    classifier /= np.linalg.norm(classifier, axis=1, keepdims=True)
    return checkpoint.save_model(directory, variables, cfg, classifier.astype(np.float32))


def write_frames(directory: str, frames: int, height: int, width: int) -> str:
    from PIL import Image

    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(1)
    for t in range(frames):
        image = rng.integers(0, 256, (height, width, 3), np.uint8)
        Image.fromarray(image).save(os.path.join(directory, f"{t:05d}.png"))
    return directory


def _main_command(
    config_path: str, mode: str, model: str, out: str, cache: str, window: int
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ov2seg_jax.main",
        f"--config={config_path}",
        f"--mode={mode}",
        f"--workdir={out}",
        f"--config.checkpoint.path={model}",
        f"--config.compilation_cache_dir={cache}",
        f"--config.inference.window_size={window}",
    ]


def write_export(
    config_path: str, model: str, out: str, cache: str, window: int, bucket: str, platform: str
) -> str:
    """``--mode export`` of the model directory for one bucket on this platform; its folder."""
    folder = os.path.join(out, "export")
    command = _main_command(config_path, "export", model, out, cache, window) + [
        f"--config.export.buckets={bucket}",
        f"--config.export.platforms={platform}",
        "--config.export.saved_model=False",
        f"--config.export.output={folder}",
    ]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"export failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return folder


def predict_once(
    config_path: str, model: str, frames: str, out: str, cache: str, window: int, export: str = ""
) -> dict:
    """One fresh ``--mode predict`` process: first-window time, wall time, peak RSS."""
    command = _main_command(config_path, "predict", model, out, cache, window) + [
        f"--config.predict.input={frames}",
        f"--config.predict.output={out}",
        "--config.predict.overlay=none",
        f"--config.inference.export={export}",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"predict failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    found = FIRST_WINDOW.search(proc.stdout)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    nan = float("nan")
    return {
        "first_window_s": float(found.group(1)) if found else nan,
        "startup_s": float(found.group(2)) if found and found.group(2) else nan,
        "window_s": float(found.group(3)) if found and found.group(3) else nan,
        "wall_s": wall,
        # ru_maxrss of children is the largest child so far: exact for the first, a bound after
        "peak_rss_gb": max(rss, before) / 1e6,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="r50", help="r50, swinb or config files, comma-separated")
    p.add_argument("--frames", type=int, default=4, help="at least two windows")
    p.add_argument(
        "--window",
        type=int,
        default=2,
        help="frames a window (inference.window_size): a short window keeps the noise of the "
        "window time, which the start-up is computed with, small",
    )
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=864)
    p.add_argument("--runs", type=int, default=3, help="fresh processes per model (>= 2)")
    p.add_argument("--workdir", help="where model, frames and cache go (default: a temp dir)")
    p.add_argument(
        "--export",
        action="store_true",
        help="also time predict from a --mode export folder of the model (its StableHLO)",
    )
    args = p.parse_args(argv)
    if args.frames < 2 * args.window:
        p.error("--frames must be at least two windows (2 * --window)")
    if args.runs < 2:
        p.error("--runs must be >= 2: the first process fills the cache, the next ones use it")
    work = args.workdir or tempfile.mkdtemp(prefix="ov2seg_startup_")
    frames = write_frames(os.path.join(work, "frames"), args.frames, args.height, args.width)
    print(
        f"{args.frames} frames of {args.height}x{args.width}, windows of {args.window}; "
        f"work in {work}"
    )
    print(
        f"{'model':<14} {'from':<10} {'process':>7} {'cache':>6} {'start-up s':>10} "
        f"{'window s':>8} {'first window s':>14} {'wall s':>7} {'RSS GB':>6}"
    )
    for name in args.models.split(","):
        config_path = CONFIG_FILES.get(name, name)
        tag = os.path.splitext(os.path.basename(config_path))[0]
        config = load_config(config_path)
        model = write_model_dir(config.model, os.path.join(work, tag, "model"))
        cache = os.path.join(work, tag, "xla_cache")
        out = os.path.join(work, tag, "out")
        sources = [("checkpoint", "")]
        if args.export:
            import jax

            from ov2seg_jax.inference.frames import resized_shape
            from ov2seg_jax.models.preprocess import padded_size

            inf = config.inference
            size = (args.height, args.width)
            if inf.min_size_test:
                size = resized_shape(*size, inf.min_size_test, inf.max_size_test)
            hp, wp = padded_size(*size, inf.size_divisibility)
            bucket = f"{args.window}x{hp}x{wp}x{config.model.num_classes}"
            platform = jax.default_backend()
            sources.append(
                (
                    "export",
                    write_export(config_path, model, out, cache, args.window, bucket, platform),
                )
            )
        for source, export in sources:
            for run in range(args.runs):
                r = predict_once(config_path, model, frames, out, cache, args.window, export)
                state = "cold" if run == 0 else "warm"
                print(
                    f"{name:<14} {source:<10} {run + 1:>7} {state:>6} {r['startup_s']:>10.2f} "
                    f"{r['window_s']:>8.2f} {r['first_window_s']:>14.2f} {r['wall_s']:>7.1f} "
                    f"{r['peak_rss_gb']:>6.2f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
