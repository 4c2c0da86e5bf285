"""Window programs kept on disk, so a process predicting from a checkpoint skips model tracing.

jax's persistent compilation cache (:mod:`ov2seg_jax.compile_cache`) spares a second process the
compile, but not the tracing and lowering that find the cache entry: for R50 that is 1-3 s of
Flax tracing, plus about 1 s of ``jax.eval_shape`` to learn the variables' shapes before the
checkpoint is restored. This cache keeps, per window shape (bucket), the lowered window function
as a ``jax.export`` artifact (StableHLO; weights are an input, not part of it). A later process
deserialises it instead of tracing the model (its call then lowers in a fraction of a second and
compiles from the persistent cache), and reads the variables' shapes from it instead of
``eval_shape``.

An artifact is only valid for the program it was lowered from, so its folder is named by a hash
of everything that decides that program: the model config, the matmul precision, the jax and
jaxlib versions, the platform and device kind, and the native kernels' library build (the
programs call its handlers by name). A damaged or mismatching file is lowered again and replaced,
never trusted. The folder is ``programs/<hash>`` inside the compilation cache folder; the cache is
used only when that cache is on, and by single-process runs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os

import jax
import jaxlib
import ml_collections

from ov2seg_jax.atomic_file import atomic_write

FORMAT = 1  # bump when the artifacts' contents change meaning
SUFFIX = ".jax_exported"


def program_key(model_cfg: ml_collections.ConfigDict, matmul_precision: str | None) -> str:
    """16 hex digits naming the window programs of this model on this machine's jax/backend."""
    from ov2seg_jax.compile_cache import native_library_tag

    device = jax.devices()[0]
    described = {
        "format": FORMAT,
        "model": model_cfg.to_dict(),
        "matmul_precision": matmul_precision,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "platform": device.platform,
        "device_kind": device.device_kind,
        "native_library": native_library_tag(),
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_folder(model_cfg: ml_collections.ConfigDict, matmul_precision: str | None) -> str | None:
    """This model's program folder inside jax's compilation cache folder; None when that cache is
    off, or in a process group (several processes run the jitted model as before)."""
    root = jax.config.jax_compilation_cache_dir
    if not root or jax.process_count() > 1:
        return None
    return os.path.join(root, "programs", program_key(model_cfg, matmul_precision))


def _read(path: str) -> jax.export.Exported | None:
    try:
        with open(path, "rb") as f:
            return jax.export.deserialize(bytearray(f.read()))
    except Exception:  # a damaged or foreign file is lowered again, never trusted
        return None


class ProgramCache:
    """``(variables, images, classifier) -> window outputs`` through cached window programs.

    ``forward`` is the jitted window function (:func:`~ov2seg_jax.inference.predictor.
    jitted_forward`); it is lowered (never compiled) once per new bucket, and the artifact is
    written to ``folder``.
    """

    def __init__(self, folder: str, forward):
        self.folder = folder
        self.forward = forward
        self._calls: dict[tuple, object] = {}
        self.exported_here: list[str] = []  # buckets lowered in this process (file names)

    @staticmethod
    def file_name(images, classifier) -> str:
        window, height, width = images.shape[:3]
        return f"window_{window}x{height}x{width}x{classifier.shape[0]}{SUFFIX}"

    def __call__(self, variables, images, classifier):
        key = (tuple(images.shape), str(images.dtype), tuple(classifier.shape))
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = self._program(variables, images, classifier)
        return call(variables, images, classifier)

    def _program(self, variables, images, classifier):
        from kernels.native_library import register_all

        if jax.default_backend() == "cpu":
            register_all()  # a program read back calls the native handlers by name
        path = os.path.join(self.folder, self.file_name(images, classifier))
        specs = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), (variables, images, classifier)
        )
        exported = _read(path) if os.path.isfile(path) else None
        if exported is None or _avals(_in_args(exported)) != _avals(specs):
            exported = self._lower(specs)
            os.makedirs(self.folder, exist_ok=True)
            with atomic_write(path, "wb") as f:
                f.write(exported.serialize())
            self.exported_here.append(os.path.basename(path))
        return jax.jit(exported.call)

    def _lower(self, specs) -> jax.export.Exported:
        from kernels.native_library import ffi_targets

        checks = [jax.export.DisabledSafetyCheck.custom_call(t) for t in ffi_targets()]
        with jax.default_matmul_precision(self.forward.precision):
            return jax.export.export(self.forward.jitted, disabled_checks=checks)(*specs)


def cached_variable_shapes(folder: str):
    """The variables' shapes and dtypes (a tree of ShapeDtypeStruct) from any program cached in
    ``folder``; None when none is usable."""
    if not os.path.isdir(folder):
        return None
    for name in sorted(os.listdir(folder)):
        if name.endswith(SUFFIX):
            exported = _read(os.path.join(folder, name))
            if exported is not None:
                return _in_args(exported)[0]
    return None


def _in_args(exported: jax.export.Exported) -> tuple:
    """The positional arguments the program takes, as ShapeDtypeStruct trees."""
    args, _ = jax.tree_util.tree_unflatten(exported.in_tree, exported.in_avals)
    return args


def _avals(specs) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(specs)
    return treedef, tuple((tuple(x.shape), str(x.dtype)) for x in leaves)


@functools.lru_cache(maxsize=8)
def program_cache(folder: str, forward) -> ProgramCache:
    """One :class:`ProgramCache` per folder and window function in a process."""
    return ProgramCache(folder, forward)
