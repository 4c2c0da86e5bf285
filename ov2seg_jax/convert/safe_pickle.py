"""Reading ``.pkl`` checkpoints as data, never as code.

A pickle is a small program: its ``GLOBAL`` instructions import any name and its ``REDUCE``
instructions call it, so ``pickle.load`` on a file from the internet runs whatever the file says.
:func:`load_pickle` resolves globals from a fixed table instead of importing them. What a
checkpoint pickle legitimately holds needs only:

* builtin containers and scalars (dict, list, tuple, str, bytes, int, float, bool, None), which
  pickle builds with opcodes of its own, no global involved;
* ``collections.OrderedDict`` (torch state dicts);
* numpy arrays, scalars and dtypes: the reconstructors numpy's ``__reduce__`` names, under the
  numpy 2 (``numpy._core``) and numpy 1 (``numpy.core``) module names, and ``_codecs.encode``
  restricted to latin-1 (protocol 2 writes bytes through it);
* torch tensors pickled with plain ``pickle`` (the original's ``resnet50_miil_21k.pkl``): the
  tensor rebuilder, and torch's storage loader replaced by one that reads the storage bytes with
  ``torch.load(weights_only=True)``. torch is imported only when a file names it.

Every other global is refused with :class:`UnsafePickleError` naming it and the file, at the
instruction that names it, i.e. before anything could call it. The names are looked up in the
table only, so ``numpy.ndarray`` subclasses, ``os.system``, ``builtins.eval``, ``subprocess``
and the like are all refused the same way.
"""

from __future__ import annotations

import codecs
import collections
import io
import pickle
from typing import Any, BinaryIO

import numpy as np
from numpy._core import multiarray as _np_multiarray
from numpy._core import numeric as _np_numeric


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle refers to something other than data (a function or class outside the table)."""


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol 2 uses it for bytes: only with latin-1."""
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise UnsafePickleError(
            f"_codecs.encode is allowed only on text with latin-1, got encoding {encoding!r}"
        )
    return text.encode("latin-1")


def _import_torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the pickle holds torch tensors; reading it needs PyTorch: pip install 'ov2seg-jax[torch]'"
        ) from e
    return torch


def _torch_storage_from_bytes(data: bytes):
    torch = _import_torch()

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _torch_rebuild_tensor(*args):
    _import_torch()
    from torch._utils import _rebuild_tensor_v2

    return _rebuild_tensor_v2(*args)


_NUMPY = {
    "_reconstruct": _np_multiarray._reconstruct,
    "scalar": _np_multiarray.scalar,
}
ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("torch._utils", "_rebuild_tensor_v2"): _torch_rebuild_tensor,
    ("torch.storage", "_load_from_bytes"): _torch_storage_from_bytes,
    **{(f"numpy.{core}.multiarray", k): v for core in ("_core", "core") for k, v in _NUMPY.items()},
    **{
        (f"numpy.{core}.numeric", "_frombuffer"): _np_numeric._frombuffer
        for core in ("_core", "core")
    },
}


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, source: str, **kwargs) -> None:
        super().__init__(file, **kwargs)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        found = ALLOWED.get((module, name))
        if found is None:
            raise UnsafePickleError(
                f"{self._source}: refused to load: the pickle refers to {module}.{name}; a .pkl "
                "checkpoint may hold only dicts, lists, strings, numbers, numpy arrays and torch "
                "tensors, nothing that runs code"
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            f"{self._source}: refused to load: the pickle uses persistent ids (a torch.save "
            "file renamed .pkl? give it its .pth name)"
        )


def load_pickle(path: str) -> Any:
    """Unpickle ``path`` with the restricted table above (latin-1 for Python 2 strings)."""
    with open(path, "rb") as f:
        try:
            return _DataUnpickler(f, path, encoding="latin1").load()
        except UnsafePickleError as e:
            if str(e).startswith(path):
                raise
            raise UnsafePickleError(f"{path}: refused to load: {e}") from None
