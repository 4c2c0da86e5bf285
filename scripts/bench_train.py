"""Training step time and images/s of a config, on whatever machine this runs on.

  python scripts/bench_train.py                              # R50 LVIS recipe at 256x256, batch 2
  python scripts/bench_train.py --image-size 512 --batch 4 --dtype bfloat16
  python scripts/bench_train.py --config configs/synthetic.py --image-size 128 --batch 8

The step is the real one (model with deep supervision, the criterion with the Hungarian matcher
and point sampling, AdamW with clipping, under ``jax.jit`` with the loop's shardings and donated
state) on random images with rectangle instances. The first step (compilation) is reported apart;
the table gives the median and spread of the following steps, images/s over all devices and the
peak host memory of this process.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from ov2seg_jax.models.ov2seg import build_model  # noqa: E402
from ov2seg_jax.parity.paths import metadata_dir  # noqa: E402
from ov2seg_jax.train import sharding  # noqa: E402
from ov2seg_jax.train.loop import initial_state, jitted_train_step  # noqa: E402
from ov2seg_jax.train.run import make_loss_terms_fn  # noqa: E402


def load_config(path: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def random_batch(rng: np.random.Generator, batch: int, size: int, instances: int, classes: int):
    """Random-texture images with ``instances`` random rectangles each (labels uniform)."""
    image = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    masks = np.zeros((batch, instances, size, size), bool)
    for b in range(batch):
        for n in range(instances):
            y0, x0 = rng.integers(0, size // 2, 2)
            h, w = rng.integers(size // 8, size // 2, 2)
            masks[b, n, y0 : y0 + h, x0 : x0 + w] = True
    labels = rng.integers(0, classes, (batch, instances)).astype(np.int32)
    return {"image": image, "masks": masks, "labels": labels, "valid": np.ones_like(labels, bool)}


def fed_weights(config, num_classes: int) -> np.ndarray | None:
    if not config.loss.federated:
        return None
    from ov2seg_jax.losses.federated import load_lvis_fed_weights

    path = os.path.join(metadata_dir(), os.path.basename(config.loss.class_frequency_path))
    if os.path.isfile(path):
        weights = load_lvis_fed_weights(path)
        if weights.shape[0] == num_classes:
            return weights
    return np.ones((num_classes,), np.float32)  # same cost: 50 categories drawn either way


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="configs/ov2seg_r50_lvis.py")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--batch", type=int, default=2, help="global batch (all devices)")
    p.add_argument("--instances", type=int, default=8, help="instances per image")
    p.add_argument("--steps", type=int, default=5, help="timed steps after the first")
    p.add_argument("--dtype", default=None, help="float32 or bfloat16 (default: the config's)")
    args = p.parse_args()

    config = load_config(args.config)
    dtype = args.dtype or config.train.compute_dtype
    num_classes = config.model.num_classes
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(num_classes, config.model.decoder.text_embed_dim))
    classifier = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)

    mesh = sharding.make_mesh()
    if args.batch % mesh.devices.size:
        raise SystemExit(f"--batch {args.batch} must be divisible by {mesh.devices.size} devices")
    model = build_model(config.model)
    config.train.compute_dtype = dtype
    state, state_sh, tx, _ = initial_state(config, model, classifier, mesh)
    loss_fn, weights = make_loss_terms_fn(config, fed_weights(config, num_classes))
    step = jitted_train_step(config, model, tx, classifier, loss_fn, weights, mesh, state_sh)
    batches = [
        sharding.global_batch(
            random_batch(rng, args.batch, args.image_size, args.instances, num_classes), mesh
        )
        for _ in range(2)
    ]

    t = time.perf_counter()
    state, metrics = step(state, batches[0])
    jax.block_until_ready(metrics)
    first = time.perf_counter() - t
    times = []
    for i in range(args.steps):
        t = time.perf_counter()
        state, metrics = step(state, batches[(i + 1) % 2])
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    dev = jax.devices()[0]
    print(f"device: {len(jax.devices())} x {dev.device_kind} ({dev.platform})")
    print(
        "| config | image | batch | dtype | first step (compile) s | step s, median (min-max) "
        "| images/s | peak host RSS GiB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {os.path.basename(args.config)} | {args.image_size} | {args.batch} | {dtype} | "
        f"{first:.1f} | {med:.3f} ({min(times):.3f}-{max(times):.3f}) | "
        f"{args.batch / med:.2f} | {rss:.2f} |"
    )
    print(f"loss {float(metrics['loss']):.3f}, finite {bool(metrics['finite'])}")


if __name__ == "__main__":
    main()
