"""Dispatch a fixture directory to its checker by the files it holds."""

from __future__ import annotations

import os

from ov2seg_jax.parity.report import Row


def check_fixture_dir(fixture_dir: str) -> list[Row]:
    """Rows for a model fixture dir (``manifest.json``) or a tracking dir (``synthetic_*.npz``)."""
    if not os.path.isdir(fixture_dir):
        raise FileNotFoundError(f"fixture directory not found: {fixture_dir}")
    if os.path.exists(os.path.join(fixture_dir, "manifest.json")):
        from ov2seg_jax.parity.model_fixture import check_model_dir

        return check_model_dir(fixture_dir)
    if os.path.exists(os.path.join(fixture_dir, "synthetic_tracking.npz")):
        from ov2seg_jax.parity.tracking_fixture import check_tracking_dir

        return check_tracking_dir(fixture_dir)
    raise ValueError(
        f"{fixture_dir} is neither a model fixture directory (manifest.json) nor a "
        "tracking fixture directory (synthetic_tracking.npz)"
    )
