"""The exported window function as a TF SavedModel, through ``jax2tf``.

In jax 0.10 ``jax.experimental.jax2tf.convert`` only does native serialisation (its
``native_serialization`` and ``enable_xla`` switches are deprecated no-ops): the function is
lowered to the same StableHLO as ``jax.export`` and embedded in the graph as one
``XlaCallModule`` op, for the platforms asked. So the SavedModel runs wherever TF's XLA runs
that module (TF CPU here; TF GPU/TPU builds for the other platforms), not on TF Lite or TF.js.
orbax-export is not used: it wraps the same ``jax2tf`` call.

Layout: one ``tf.Module`` holding the weights as non-trainable ``tf.Variable`` s (shared by every
bucket) and one signature per bucket, ``bucket_<W>x<H>x<Wd>x<C>``, with inputs ``images``
(window, height, width, 3) float32 and ``classifier`` (num_classes, D) float32 and outputs
``pred_embds``, ``pred_logits``, ``pred_masks``, ``pred_object_logits``; the first bucket is also
``serving_default``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ov2seg_jax.export.buckets import Bucket, signature_name


def write_saved_model(
    directory: str,
    forward: Callable,
    weights: Sequence[np.ndarray],
    buckets: Sequence[Bucket],
    text_dim: int,
    platforms: Sequence[str],
) -> dict:
    """Save ``forward(weights, images, classifier)`` for ``buckets``; returns its manifest part."""
    import tensorflow as tf
    from jax.experimental import jax2tf

    converted = jax2tf.convert(
        forward, native_serialization_platforms=tuple(platforms), with_gradient=False
    )
    module = tf.Module()
    module.weights = [tf.Variable(w, trainable=False) for w in weights]

    def make(bucket: Bucket):
        @tf.function(
            autograph=False,
            input_signature=[
                tf.TensorSpec(
                    (bucket.window, bucket.height, bucket.width, 3), tf.float32, "images"
                ),
                tf.TensorSpec((bucket.num_classes, text_dim), tf.float32, "classifier"),
            ],
        )
        def serve(images, classifier):
            return converted(list(module.weights), images, classifier)

        return serve

    signatures = {}
    for bucket in buckets:
        fn = make(bucket)
        setattr(module, signature_name(bucket), fn)
        signatures[signature_name(bucket)] = fn
    signatures["serving_default"] = signatures[signature_name(buckets[0])]
    tf.saved_model.save(module, directory, signatures=signatures)
    return {
        "dir": "saved_model",
        "signatures": sorted(signatures),
        "inputs": {
            "images": "(window, height, width, 3) float32",
            "classifier": f"(num_classes, {text_dim}) float32",
        },
        "outputs": ["pred_embds", "pred_logits", "pred_masks", "pred_object_logits"],
        "platforms": list(platforms),
        "note": "jax2tf native serialisation: one XlaCallModule op; weights are variables",
    }
