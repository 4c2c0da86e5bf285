"""Reading original checkpoints into ``{key: numpy array}``.

* ``.pth``: ``torch.save`` of ``{'model': state_dict, ...}`` (detectron2's format) or of a bare
  state dict, loaded with ``weights_only=True``; needs the optional ``torch`` extra.
* ``.pkl``: a pickled dict of numpy arrays, bare or under ``'model'`` (detectron2's model zoo
  format, optionally with ``'__author__'`` / ``'matching_heuristics'`` metadata), read with the
  restricted unpickler of :mod:`ov2seg_jax.convert.safe_pickle`: data only, any other global is
  refused before it could run.

Half-precision tensors are widened to float32; integer buffers keep their dtype.
"""

from __future__ import annotations

import os

import numpy as np

from ov2seg_jax.convert.safe_pickle import UnsafePickleError, load_pickle


class CheckpointFormatError(ValueError):
    """The file is not a checkpoint this converter can read."""


def _to_numpy(key: str, value, path: str) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor
        value = value.detach().cpu()
        if value.dtype.is_floating_point:
            value = value.float()
        value = value.numpy()
    arr = np.asarray(value)
    if arr.dtype == object:
        raise CheckpointFormatError(
            f"{path}: entry {key!r} is not an array (type {type(value).__name__})"
        )
    if np.issubdtype(arr.dtype, np.floating) and arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    return arr


def _state_dict_of(obj, path: str) -> dict:
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointFormatError(
            f"{path}: expected a dict of tensors (optionally under 'model'), "
            f"got {type(obj).__name__}"
        )
    return obj


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Read a checkpoint file into a flat ``{key: np.ndarray}``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext in (".pth", ".pt", ".bin"):
        try:
            import torch
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"reading {path} needs PyTorch: pip install 'ov2seg-jax[torch]'"
            ) from e
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointFormatError(f"{path}: torch.load failed: {e}") from e
    elif ext == ".pkl":
        try:
            obj = load_pickle(path)
        except UnsafePickleError as e:
            raise CheckpointFormatError(str(e)) from e
        except Exception as e:
            raise CheckpointFormatError(f"{path}: not a readable pickle: {e}") from e
    else:
        raise CheckpointFormatError(f"{path}: unknown checkpoint extension {ext!r} (.pth or .pkl)")
    state = _state_dict_of(obj, path)
    return {str(k): _to_numpy(str(k), v, path) for k, v in state.items()}
