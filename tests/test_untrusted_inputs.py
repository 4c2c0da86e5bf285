"""Files the project did not write are read as data: a pickled object hidden in a classifier
``.npy`` or in a CLIP checkpoint's ``pytorch_model.bin`` is refused and never runs (the ``.pkl``
checkpoints have their own tests in ``tests/convert/test_safe_pickle.py``)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from ov2seg_jax import checkpoint, modes


class _RunsCommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_classifier_npy_with_objects_is_refused(tmp_path):
    marker = tmp_path / "marker"
    arr = np.empty((1, 1), dtype=object)
    arr[0, 0] = _RunsCommand(f"touch {marker}")
    np.save(tmp_path / "classifier.npy", arr, allow_pickle=True)
    with pytest.raises(modes.UserError, match=r"classifier\.npy.*allow_pickle=False"):
        modes.load_classifier(str(tmp_path / "classifier.npy"), 1)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        checkpoint.load_classifier(str(tmp_path))
    assert not marker.exists()


def test_clip_weights_go_through_the_weights_only_loader(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from ov2seg_jax.vocabulary.clip_text import ClipTextEncoder
    from tests.inference.conftest import write_tiny_clip

    model_dir = write_tiny_clip(str(tmp_path / "clip"), projection_dim=8)
    marker = tmp_path / "marker"
    os.remove(os.path.join(model_dir, "model.safetensors"))
    with open(os.path.join(model_dir, "pytorch_model.bin"), "wb") as f:
        pickle.dump({"text_projection.weight": _RunsCommand(f"touch {marker}")}, f, protocol=2)
    with pytest.raises(
        OSError,
        match=rf"^refused to load the CLIP .*refers to {os.system.__module__}\.system, not only tensors",
    ):
        ClipTextEncoder(model_dir)
    assert not marker.exists()
