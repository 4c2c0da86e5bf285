"""An export folder loaded back: the per-window network as a :class:`VideoPredictor` backend.

:meth:`ExportedModel.load` reads ``manifest.json``; ``weights.npz`` is read and the bucket
artifacts are deserialised on first use. :meth:`ExportedModel.forward` has the signature of the live
model's jitted forward (``(weights, images, classifier) -> window outputs``), so
:meth:`VideoPredictor.from_export` runs the same tracking, read-out, results and overlay code
on top of it. A window whose shape was not exported is a ``ValueError`` naming the buckets that
were. On CPU the bucket's native-core artifact runs when the export holds one made against the
native library built here (same content hash); otherwise the portable one. Nothing here imports
the model code.
"""

from __future__ import annotations

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from ov2seg_jax.export.buckets import Bucket, describe
from ov2seg_jax.export.writer import CLASSIFIER, FORMAT, MANIFEST

_BACKEND_PLATFORM = {"cpu": "cpu", "gpu": "cuda", "cuda": "cuda", "tpu": "tpu"}


def _native_library_matches(manifest: dict) -> bool:
    """Whether this is a CPU process whose native kernels' library is the one the export's native
    artifacts were lowered against (registering every native handler if so)."""
    wanted = manifest.get("cpu_native_library")
    if not wanted or jax.default_backend() != "cpu":
        return False
    from kernels.native_library import register_all
    from ov2seg_jax.compile_cache import native_library_tag

    return native_library_tag() == wanted and register_all()


class ExportedModel:
    """The exported network of one export folder (see :mod:`ov2seg_jax.export.writer`)."""

    def __init__(self, directory: str, manifest: dict):
        self.directory = directory
        self.manifest = manifest
        self.buckets = {
            Bucket(b["window"], b["height"], b["width"], b["num_classes"]): b["file"]
            for b in manifest["buckets"]
        }
        # artifacts with the native CPU core, usable only beside the library they were made with
        native = _native_library_matches(manifest)
        self.native_files = {
            Bucket(b["window"], b["height"], b["width"], b["num_classes"]): b["cpu_native_file"]
            for b in manifest["buckets"]
            if native and b.get("cpu_native_file")
        }
        self.text_embed_dim = int(manifest["inputs"][2]["shape"][1])
        self.size_divisibility = int(manifest["preprocessing"]["size_divisibility"])
        self._calls: dict[Bucket, object] = {}

    @classmethod
    def load(cls, directory: str) -> ExportedModel:
        """Read ``directory``; FileNotFoundError / ValueError naming the file at fault."""
        path = os.path.join(directory, MANIFEST)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} not found: {directory} is not an export folder "
                "(write one with --mode export)"
            )
        try:
            with open(path) as f:
                manifest = json.load(f)
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read {path}: {e}") from e
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ValueError(f"{path} is not an ov2seg-jax export manifest")
        platform = _BACKEND_PLATFORM.get(jax.default_backend(), jax.default_backend())
        if platform not in manifest["platforms"]:
            raise ValueError(
                f"{directory} was exported for {', '.join(manifest['platforms'])}, not for this "
                f"machine's {platform}; export again with export.platforms including {platform}"
            )
        return cls(directory, manifest)

    @functools.cached_property
    def weights(self) -> list[jax.Array]:
        """The network's arrays in argument order (``weights.npz``, checked against the
        manifest)."""
        spec = self.manifest["weights"]
        path = os.path.join(self.directory, spec["file"])
        try:
            with np.load(path, allow_pickle=False) as stored:
                weights = [jnp.asarray(stored[a["key"]]) for a in spec["arrays"]]
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"cannot read the weights {path}: {e}") from e
        for w, a in zip(weights, spec["arrays"], strict=True):
            if list(w.shape) != a["shape"]:
                raise ValueError(
                    f"{path}: {a['key']} has shape {tuple(w.shape)}, the manifest says {a['shape']}"
                )
        return weights

    @property
    def classifier(self) -> np.ndarray | None:
        """The classifier saved with the model, if the export holds one."""
        path = os.path.join(self.directory, CLASSIFIER)
        return np.load(path) if os.path.isfile(path) else None

    def check_bucket(self, bucket: Bucket) -> None:
        if bucket not in self.buckets:
            raise ValueError(
                f"no exported network for bucket {bucket.name} (window x padded height x padded "
                f"width x classes) in {self.directory}; it holds {describe(self.buckets)}. "
                "Export this bucket with --mode export --config.export.buckets="
                f"{bucket.name}"
            )

    def artifact(self, bucket: Bucket) -> str:
        """The file run for ``bucket`` here: the native-CPU one when it fits, else the portable."""
        self.check_bucket(bucket)
        return self.native_files.get(bucket) or self.buckets[bucket]

    def _call(self, bucket: Bucket):
        if bucket not in self._calls:
            path = os.path.join(self.directory, self.artifact(bucket))
            try:
                with open(path, "rb") as f:
                    exported = jax.export.deserialize(bytearray(f.read()))
            except (OSError, ValueError) as e:
                raise ValueError(f"cannot load the exported network {path}: {e}") from e
            self._calls[bucket] = jax.jit(exported.call)
        return self._calls[bucket]

    def forward(self, weights, images, classifier) -> dict[str, jax.Array]:
        """The window outputs for ``images`` (window, height, width, 3) and ``classifier``."""
        t, h, w, _ = images.shape
        return self._call(Bucket(int(t), int(h), int(w), int(classifier.shape[0])))(
            weights, images, classifier
        )
