"""Inference speed, memory and start-up of OV2Seg (one window of frames), per model, per frame.

    python scripts/bench_inference.py                       # R50 and Swin-B, 480x864, window 10
    python scripts/bench_inference.py --models r50 --frames 2 --repeats 2
    python scripts/bench_inference.py --models configs/tiny.py --frames 1 --height 64 --width 96

Random weights (speed does not depend on them), the config's head, one jitted call per window as
the predictor makes it (``ov2seg_jax.inference.predictor.jitted_forward``). One row per model:

* ``total``: median seconds per frame of the whole jitted window call;
* ``backbone`` / ``pixel decoder`` / ``decoder``: the same three stages jitted separately, per frame
  (XLA fuses across the boundaries in the whole call, so they need not add up to ``total``);
* ``msda core``: the deformable-attention core alone (``ms_deform_attn`` with the config's
  implementation, its ``num_encoder_layers`` calls at this window's level sizes), per frame; it is
  part of the pixel decoder;
* ``track+readout``: the host-side tracking, top-K read-out and mask resizing of the window;
* ``build``: ``jax.eval_shape`` of the variables (what a checkpoint restore needs) and, for the
  random weights timed here, ``model.init``;
* ``compile``: first call minus a timed call; ``warm start``: the first call again after
  ``jax.clear_caches()`` with the persistent compilation cache holding the executable (what a
  second process pays; equal to ``compile`` when the cache does not hit);
* ``peak RSS``: the process's peak resident memory after all of the above; ``dev GB``: the peak
  device memory in use (GPU/TPU; NaN on CPU).

``--json`` prints one JSON object per model instead of the table; ``--total-only`` skips the parts
and the warm start (the parts are NaN), for a quick run on an accelerator.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from kernels import native_library  # noqa: E402
from kernels.ms_deform_attn import ms_deform_attn  # noqa: E402
from kernels.ms_deform_attn.api import resolve_implementation  # noqa: E402
from kernels.ms_deform_attn.shapes import MSDAShape, encoder_levels, make_inputs  # noqa: E402
from ov2seg_jax import host_allocator  # noqa: E402
from ov2seg_jax.inference import predictor as predictor_module  # noqa: E402
from ov2seg_jax.inference.predictor import jitted_forward  # noqa: E402
from ov2seg_jax.models.ov2seg import build_model  # noqa: E402
from ov2seg_jax.models.preprocess import normalize_and_pad  # noqa: E402
from ov2seg_jax.tracking import instance_inference, masks_to_output, track_window  # noqa: E402
from ov2seg_jax.tracking.tracker import assemble_result  # noqa: E402

CONFIG_FILES = {"r50": "configs/ov2seg_r50_lvvis.py", "swinb": "configs/ov2seg_swinb_lvvis.py"}
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name: str):
    """``r50``/``swinb`` or a config file path -> its ``get_config()``."""
    path = CONFIG_FILES.get(name, name)
    if not os.path.isabs(path):
        path = os.path.join(_ROOT, path)
    if not os.path.isfile(path):
        raise SystemExit(f"error: --models: no config {name!r} (r50, swinb or a config file)")
    spec = importlib.util.spec_from_file_location("bench_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def _timed(fn, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


def _median(fn, args, repeats: int) -> float:
    return statistics.median(_timed(fn, *args)[1] for _ in range(repeats))


def msda_core_fn(cfg, frames: int, height: int, width: int):
    """The pixel decoder's deformable-attention calls alone, on random inputs of its size."""
    pd = cfg.model.pixel_decoder
    levels = encoder_levels(height, width)
    queries = sum(h * w for h, w in levels)
    shape = MSDAShape(
        "window", frames, queries, pd.num_heads, pd.conv_dim // pd.num_heads, levels, pd.num_points
    )
    inputs = [jnp.asarray(a) for a in make_inputs(shape)]
    layers = pd.num_encoder_layers
    implementation = pd.msda_implementation

    @jax.jit
    def core(value, locations, weights):
        out = jnp.zeros(shape.output_shape, value.dtype)
        for _ in range(layers):  # each layer's call reads the previous output
            out = out + ms_deform_attn(
                value + out[..., :1, None].mean(),
                levels,
                locations,
                weights,
                implementation=implementation,
            )
        return out

    return core, inputs, resolve_implementation(implementation, jnp.float32)


def readout(outputs: dict, hp: int, wp: int, top_k: int):
    """Tracking, top-K read-out and mask resizing of one window, as the predictor does them."""
    host = {k: np.asarray(v) for k, v in outputs.items()}
    state, aligned = track_window(None, host)
    tracked = assemble_result(state, [aligned])
    q, c = tracked.pred_logits.shape[0], tracked.pred_logits.shape[1] - 1
    inst = instance_inference(
        tracked.pred_logits,
        tracked.pred_obj_logits,
        tracked.pred_masks,
        tracked.pred_per_frame_logits,
        tracked.pred_per_frame_obj_logits,
        top_k=min(top_k, q * c),
    )
    return masks_to_output(inst.pred_masks, (hp, wp), (hp, wp), (hp, wp))


def bench(
    name: str, frames: int, height: int, width: int, repeats: int, total_only: bool = False
) -> dict:
    cfg = load_config(name)
    rng = np.random.default_rng(0)
    images = normalize_and_pad(rng.integers(0, 256, (frames, height, width, 3), np.uint8))
    hp, wp = images.shape[1:3]
    text = jnp.asarray(
        rng.standard_normal((cfg.model.num_classes, cfg.model.decoder.text_embed_dim)),
        jnp.float32,
    )

    start = time.perf_counter()
    model = build_model(cfg.model)
    jax.eval_shape(model.init, jax.random.key(0), images[:1], text)
    eval_shape_s = time.perf_counter() - start
    variables, init_s = _timed(jax.jit(model.init), jax.random.key(0), images[:1], text)

    forward = jitted_forward(model)
    outputs, first_s = _timed(forward, variables, images, text)
    total = _median(forward, (variables, images, text), repeats)
    result = {
        "model": name,
        "input": f"{frames}x{hp}x{wp}",
        "s_per_frame": total / frames,
        "eval_shape_s": eval_shape_s,
        "init_s": init_s,
        "compile_s": first_s - total,
    }
    nan = float("nan")
    if total_only:
        parts = ("backbone", "pixel_decoder", "msda_core", "decoder", "track_readout")
        return {
            **result,
            "msda_implementation": resolve_implementation(
                cfg.model.pixel_decoder.msda_implementation, jnp.float32
            ),
            **{f"{k}_s_per_frame": nan for k in parts},
            "warm_start_s": nan,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
            "peak_device_gb": _peak_device_bytes() / 1e9,
        }
    jax.clear_caches()
    # a new jitted function (not the in-process one): its executable comes from the disk cache
    fresh = predictor_module._jitted_forward.__wrapped__(model, None)
    _, warm_first_s = _timed(fresh, variables, images, text)

    backbone = jax.jit(nn.apply(lambda m, x: m.backbone(x, train=False), model))
    pixel_decoder = jax.jit(nn.apply(lambda m, f: m.pixel_decoder(f), model))
    decoder = jax.jit(nn.apply(lambda m, ms, mf, t: m.predictor(ms, mf, t), model))
    features = jax.block_until_ready(backbone(variables, images))
    mask_features, multi_scale = jax.block_until_ready(pixel_decoder(variables, features))
    jax.block_until_ready(decoder(variables, multi_scale, mask_features, text))
    core, core_inputs, implementation = msda_core_fn(cfg, frames, hp, wp)
    jax.block_until_ready(core(*core_inputs))
    readout(outputs, hp, wp, cfg.inference.top_k)
    parts = {
        "backbone": _median(backbone, (variables, images), repeats),
        "pixel_decoder": _median(pixel_decoder, (variables, features), repeats),
        "msda_core": _median(core, core_inputs, repeats),
        "decoder": _median(decoder, (variables, multi_scale, mask_features, text), repeats),
        "track_readout": statistics.median(
            _timed(readout, outputs, hp, wp, cfg.inference.top_k)[1] for _ in range(repeats)
        ),
    }
    return {
        **result,
        "msda_implementation": implementation,
        **{f"{k}_s_per_frame": v / frames for k, v in parts.items()},
        "warm_start_s": warm_first_s - total,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "peak_device_gb": _peak_device_bytes() / 1e9,
    }


def _peak_device_bytes() -> float:
    """Peak bytes in use on the first device (GPU/TPU); NaN where the backend does not say."""
    stats = jax.devices()[0].memory_stats() or {}
    return float(stats.get("peak_bytes_in_use", float("nan")))


COLUMNS = (
    ("model", "model", "{:<22}"),
    ("input", "T x H x W", "{:<12}"),
    ("msda_implementation", "msda", "{:<5}"),
    ("s_per_frame", "total s/f", "{:>9.3f}"),
    ("backbone_s_per_frame", "backbone", "{:>8.3f}"),
    ("pixel_decoder_s_per_frame", "pix.dec", "{:>8.3f}"),
    ("msda_core_s_per_frame", "msda", "{:>7.3f}"),
    ("decoder_s_per_frame", "decoder", "{:>8.3f}"),
    ("track_readout_s_per_frame", "track+ro", "{:>8.3f}"),
    ("peak_rss_gb", "RSS GB", "{:>6.2f}"),
    ("peak_device_gb", "dev GB", "{:>6.2f}"),
    ("eval_shape_s", "shapes s", "{:>8.1f}"),
    ("init_s", "init s", "{:>6.1f}"),
    ("compile_s", "compile s", "{:>9.1f}"),
    ("warm_start_s", "warm s", "{:>6.1f}"),
)


def _header(title: str, fmt: str) -> str:
    """``title`` padded like the column's number format (``{:>9.3f}`` -> right, 9 wide)."""
    spec = fmt[2:-1]
    align, width = spec[0], int("".join(c for c in spec[1:].split(".")[0] if c.isdigit()))
    return f"{title:{align}{width}}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--models", default="r50,swinb", help="r50, swinb or config files, comma-separated"
    )
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=864)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cache-dir", help="persistent compilation cache (default: a fresh temp dir)")
    p.add_argument("--json", action="store_true", help="one JSON object per model")
    p.add_argument(
        "--total-only",
        action="store_true",
        help="only the whole call, build, compile and memory (no parts, no warm start)",
    )
    args = p.parse_args(argv)
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="ov2seg_bench_cache_")
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    dev = jax.devices()[0]
    if not args.json:
        print(
            f"device: {dev.platform} {dev.device_kind}; host {platform.processor() or platform.machine()}"
            f", {os.cpu_count()} CPUs; jax {jax.__version__}; load average {os.getloadavg()[0]:.1f}"
            f"; glibc malloc: {host_allocator.STATE}"
            f"; native kernels' widest path: {native_library.widest_cpu_path()}"
        )
        print(" ".join(_header(title, fmt) for _, title, fmt in COLUMNS))
    for name in args.models.split(","):
        r = bench(name, args.frames, args.height, args.width, args.repeats, args.total_only)
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(" ".join(fmt.format(r[key]) for key, _, fmt in COLUMNS), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
