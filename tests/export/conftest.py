"""One export of a random tiny-config model, shared by the export tests (module-scoped there
would export it twice)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from configs import tiny
from ov2seg_jax import modes
from tests.inference.conftest import write_tiny_model

MIN_SIZE = 64  # 48x64 frames -> 64x85 at the network, padded to 64x96
BUCKETS = "4x64x96x3,4x96x64x3"


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """(root, config, manifest, classifier): a tiny model directory, its export (two buckets,
    three classes, all platforms, with the SavedModel) and a 3-row classifier ``root/vocab.npy``."""
    root = tmp_path_factory.mktemp("export")
    model_dir = write_tiny_model(str(root / "model"))
    cfg = tiny.get_config()
    cfg.checkpoint.path = model_dir
    cfg.export.buckets = BUCKETS
    cfg.export.output = str(root / "export")
    cfg.inference.min_size_test = MIN_SIZE
    manifest = modes.run_export(cfg, str(root / "work"))
    rng = np.random.default_rng(1)
    classifier = rng.standard_normal((3, 32)).astype(np.float32)
    classifier /= np.linalg.norm(classifier, axis=1, keepdims=True)
    np.save(root / "vocab.npy", classifier)
    return root, cfg, manifest, classifier


def write_frames(folder, t: int = 9, h: int = 48, w: int = 64) -> str:
    """A folder of ``t`` PNG frames: two coloured squares moving over noise."""
    rng = np.random.default_rng(3)
    os.makedirs(folder, exist_ok=True)
    for i in range(t):
        frame = rng.integers(20, 80, (h, w, 3), np.uint8)
        frame[6:22, 3 + 3 * i : 19 + 3 * i] = (220, 40, 40)
        frame[h - 20 : h - 4, 40 - 2 * i : 56 - 2 * i] = (40, 60, 220)
        Image.fromarray(frame).save(os.path.join(folder, f"{i:05d}.png"))
    return str(folder)
