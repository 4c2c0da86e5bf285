"""``--mode export``: the per-window network as ``jax.export`` StableHLO artifacts, one per shape
bucket, plus a TF SavedModel of the same function and a ``manifest.json`` beside them.

The exported function is ``(weights, images, classifier) -> {pred_embds, pred_logits,
pred_masks, pred_object_logits}``: the outputs the tracker reads, for one window of frames.
``weights`` is the flat list of the model's arrays (stored once in ``weights.npz`` and shared by
every bucket, instead of one embedded copy per bucket); ``images`` (window, height, width, 3) are
frames normalised and padded as :mod:`ov2seg_jax.models.preprocess` does; ``classifier``
(num_classes, D) the text classifier, so one export serves any vocabulary of that size.

Deformable attention (and a Swin backbone's window attention): every platform gets the pure-JAX
reference (``msda_implementation="xla"``, ``attention_implementation="xla"``), lowered to plain
StableHLO (gathers, dots, selects), which ``jax.export`` promises to load and run on CPU, CUDA
and TPU within its compatibility window. The Pallas kernels are not portable in that sense: the
Triton custom call of ``pallas_gpu`` is left out of ``jax.export``'s list of stable custom-call
targets ("Triton IR does not guarantee stability"), and ``pallas_tpu`` lowers to a Mosaic custom
call only when traced on a TPU host (elsewhere the model runs it in interpret mode, which is an
emulator, not a TPU kernel).

CPU exports also get a second artifact per bucket that calls the native CPU cores (``"cpu"``, the
C++ XLA FFI handlers of ``kernels/ms_deform_attn`` and, for Swin, ``kernels/window_attention``):
the portable reference is about 1.8x slower per R50 window on CPU and holds the corner tensor
(7.2 GB peak RSS against 3.6). That artifact is valid only beside the native library it was
lowered against (it calls the handlers by name and attribute layout), so the manifest records the
library's content hash and the loader uses the artifact only when the hash matches the library
built here; otherwise, and on other platforms, it runs the portable artifact.

Files written to the output folder::

    manifest.json              what follows, the preprocessing contract and versions
    weights.npz                the weights, keys w0000.. in argument order
    model_config.json          the architecture (config.model) they belong to
    classifier.npy             the classifier saved with the model, if any
    bucket_<W>x<H>x<Wd>x<C>.jax_exported   one serialised jax.export.Exported per bucket
    bucket_<W>x<H>x<Wd>x<C>.cpu_native.jax_exported   the same with the native CPU core
    saved_model/               TF SavedModel, one signature per bucket (weights as variables)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import jaxlib
import ml_collections
import numpy as np

from ov2seg_jax.atomic_file import atomic_write
from ov2seg_jax.export.buckets import Bucket, signature_name
from ov2seg_jax.models.preprocess import PIXEL_MEAN, PIXEL_STD
from ov2seg_jax.tracking.tracker import WINDOW_KEYS

FORMAT = "ov2seg-jax-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.npz"
MODEL_CONFIG = "model_config.json"
CLASSIFIER = "classifier.npy"
SAVED_MODEL = "saved_model"
PLATFORMS = ("cpu", "cuda", "tpu")
PORTABLE = "xla"  # the kernels' pure-JAX references
NATIVE = "cpu_native"  # the variant name of the artifacts with the native CPU core

OUTPUT_DOC = {
    "pred_embds": "(window, queries, hidden) query embeddings the tracker matches",
    "pred_logits": "(window, queries, num_classes + 1) class logits; the last is no-object",
    "pred_masks": "(window, queries, height / 4, width / 4) mask logits at stride 4",
    "pred_object_logits": "(window, queries, 2) objectness logits (object, no-object)",
}


def bucket_file(bucket: Bucket, variant: str = "") -> str:
    return f"bucket_{bucket.name}{'.' + variant if variant else ''}.jax_exported"


def _export_native_cpu(model_cfg, treedef, arrays, bucket: Bucket, text_dim: int) -> bytes:
    """The bucket's window function for CPU alone, with the native cores (their FFI calls
    allowed)."""
    from kernels.native_library import ffi_targets
    from ov2seg_jax.models.ov2seg import build_model

    forward = jax.jit(window_function(build_model(with_kernels(model_cfg, "cpu")), treedef))
    checks = [jax.export.DisabledSafetyCheck.custom_call(t) for t in ffi_targets()]
    exported = jax.export.export(forward, platforms=("cpu",), disabled_checks=checks)(
        *_specs(arrays, bucket, text_dim)
    )
    return exported.serialize()


def with_kernels(
    model_cfg: ml_collections.ConfigDict, implementation: str
) -> ml_collections.ConfigDict:
    """A copy of ``model_cfg`` whose deformable attention and (Swin) window attention are
    ``implementation`` (``PORTABLE`` for the artifacts every platform runs, ``"cpu"`` for the
    native ones)."""
    cfg = ml_collections.ConfigDict(model_cfg.to_dict())
    cfg.pixel_decoder.msda_implementation = implementation
    if cfg.backbone.name == "swin":
        cfg.backbone.attention_implementation = implementation
    return cfg


def window_function(model, treedef):
    """``(weights list, images, classifier) -> dict`` of the tracker's window outputs."""

    def forward(weights, images, classifier):
        out = model.apply(jax.tree_util.tree_unflatten(treedef, weights), images, classifier)
        return {k: getattr(out, k) for k in WINDOW_KEYS}

    return forward


def _specs(leaves, bucket: Bucket, text_dim: int):
    return (
        [jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype) for x in leaves],
        jax.ShapeDtypeStruct((bucket.window, bucket.height, bucket.width, 3), jnp.float32),
        jax.ShapeDtypeStruct((bucket.num_classes, text_dim), jnp.float32),
    )


def check_platforms(platforms: Sequence[str]) -> tuple[str, ...]:
    platforms = tuple(dict.fromkeys(p.strip().lower() for p in platforms if p.strip()))
    bad = [p for p in platforms if p not in PLATFORMS]
    if bad or not platforms:
        raise ValueError(
            f"export platforms must be some of {', '.join(PLATFORMS)}, got {bad or '[]'}"
        )
    return platforms


def preprocessing_contract(inference: ml_collections.ConfigDict) -> dict:
    return {
        "resize": "short side to min_size, unless the long side would exceed max_size (then the "
        "long side to max_size); sizes rounded as detectron2's ResizeShortestEdge; PIL bilinear",
        "min_size": int(inference.min_size_test),
        "max_size": int(inference.max_size_test),
        "channel_order": "RGB",
        "normalise": "(pixel - mean) / std per channel, pixels in 0..255, float32",
        "mean": list(PIXEL_MEAN),
        "std": list(PIXEL_STD),
        "pad": "zeros (after normalisation) at the bottom and right up to the bucket's height "
        "and width (the next multiples of size_divisibility)",
        "size_divisibility": int(inference.size_divisibility),
        "window_pad": "a window shorter than the bucket's is padded with all-zero frames (after "
        "normalisation) whose outputs are dropped",
    }


def write_export(
    out_dir: str,
    model_cfg: ml_collections.ConfigDict,
    variables,
    buckets: Sequence[Bucket],
    inference: ml_collections.ConfigDict,
    *,
    platforms: Sequence[str] = PLATFORMS,
    classifier: np.ndarray | None = None,
    saved_model: bool = True,
) -> dict:
    """Write the export of ``variables`` (a model of ``model_cfg``) for ``buckets`` to
    ``out_dir``; returns the manifest. ``inference`` gives the preprocessing and precision."""
    from ov2seg_jax.models.ov2seg import build_model

    platforms = check_platforms(platforms)
    stride = int(inference.size_divisibility)
    buckets = sorted({b.check(stride) for b in buckets})
    cfg = with_kernels(model_cfg, PORTABLE)
    text_dim = int(cfg.decoder.text_embed_dim)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(variables)
    paths = [jax.tree_util.keystr(p) for p, _ in leaves]
    arrays = [np.asarray(x) for _, x in leaves]
    forward = jax.jit(window_function(build_model(cfg), treedef))
    os.makedirs(out_dir, exist_ok=True)

    keys = [f"w{i:04d}" for i in range(len(arrays))]
    with atomic_write(os.path.join(out_dir, WEIGHTS), "wb") as f:
        np.savez(f, **dict(zip(keys, arrays, strict=True)))
    with atomic_write(os.path.join(out_dir, MODEL_CONFIG)) as f:
        f.write(cfg.to_json(indent=2))
    if classifier is not None:
        with atomic_write(os.path.join(out_dir, CLASSIFIER), "wb") as f:
            np.save(f, np.asarray(classifier, np.float32))

    from ov2seg_jax.compile_cache import native_library_tag

    native = "cpu" in platforms and native_library_tag() != "no-native"
    entries, version = [], None
    with jax.default_matmul_precision(inference.matmul_precision):
        for bucket in buckets:
            exported = jax.export.export(forward, platforms=platforms)(
                *_specs(arrays, bucket, text_dim)
            )
            version = exported.calling_convention_version
            with atomic_write(os.path.join(out_dir, bucket_file(bucket)), "wb") as f:
                f.write(exported.serialize())
            if native:
                blob = _export_native_cpu(model_cfg, treedef, arrays, bucket, text_dim)
                with atomic_write(os.path.join(out_dir, bucket_file(bucket, NATIVE)), "wb") as f:
                    f.write(blob)
            outputs = jax.tree_util.tree_unflatten(exported.out_tree, exported.out_avals)
            entries.append(
                {
                    "name": bucket.name,
                    "window": bucket.window,
                    "height": bucket.height,
                    "width": bucket.width,
                    "num_classes": bucket.num_classes,
                    "file": bucket_file(bucket),
                    "cpu_native_file": bucket_file(bucket, NATIVE) if native else None,
                    "saved_model_signature": signature_name(bucket) if saved_model else None,
                    "outputs": {k: list(v.shape) for k, v in outputs.items()},
                }
            )
        saved = None
        if saved_model:
            from ov2seg_jax.export.saved_model import write_saved_model

            saved = write_saved_model(
                os.path.join(out_dir, SAVED_MODEL),
                window_function(build_model(cfg), treedef),
                arrays,
                buckets,
                text_dim,
                platforms,
            )

    try:  # the range of calling conventions this jax reads (not public API; for the record)
        from jax._src.export import _export

        readable = (
            f"{_export.minimum_supported_calling_convention_version}.."
            f"{_export.maximum_supported_calling_convention_version}"
        )
    except (ImportError, AttributeError):
        readable = "unknown"

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "calling_convention_version": version,
        "compatibility": (
            f"written by jax {jax.__version__} with jax.export calling convention {version} "
            f"(this jax reads {readable}). jax.export keeps artifacts loadable "
            "by jax/jaxlib releases up to 6 months newer than the writer (backward "
            "compatibility) and gives little forward compatibility: load with the writer's "
            "version or a newer one within that window, else export again."
        ),
        "platforms": list(platforms),
        "msda_implementation": PORTABLE,
        "cpu_native_library": native_library_tag() if native else None,
        "msda_reason": (
            "the pure-JAX reference lowers to plain StableHLO that jax.export runs on every "
            "platform; Triton (pallas_gpu) custom calls are not among jax.export's stable "
            "targets and Mosaic (pallas_tpu) kernels lower only on a TPU host"
        ),
        "matmul_precision": inference.matmul_precision,
        "model_config": MODEL_CONFIG,
        "classifier": CLASSIFIER if classifier is not None else None,
        "weights": {
            "file": WEIGHTS,
            "count": len(arrays),
            "arrays": [
                {"key": k, "path": p, "shape": list(a.shape), "dtype": str(a.dtype)}
                for k, p, a in zip(keys, paths, arrays, strict=True)
            ],
        },
        "inputs": [
            {"name": "weights", "note": f"the {len(arrays)} arrays of {WEIGHTS} in key order"},
            {"name": "images", "shape": ["window", "height", "width", 3], "dtype": "float32"},
            {"name": "classifier", "shape": ["num_classes", text_dim], "dtype": "float32"},
        ],
        "outputs": [{"name": k, "dtype": "float32", "shape": v} for k, v in OUTPUT_DOC.items()],
        "preprocessing": preprocessing_contract(inference),
        "buckets": entries,
        "saved_model": saved,
    }
    with atomic_write(os.path.join(out_dir, MANIFEST)) as f:
        json.dump(manifest, f, indent=1)
    return manifest
