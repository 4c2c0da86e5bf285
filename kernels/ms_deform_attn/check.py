"""Checking an MSDA implementation against golden cases (the ``msda/`` fixture layout).

A case folder holds ``index.json`` (its ``cases`` list names each case) and one ``<case>.npz`` per
case with float64 inputs, the output and the gradients of ``sum(output * cotangent)``. The test
suite and ``scripts/check_msda.py`` both go through :func:`check_case`, so they apply the same
tolerances to the same tensors.

Tolerances are elementwise ``|ours - ref| <= factor * max|ref|``, one factor per compute dtype:

* float32: ``1e-5``. The original's own float32 run differs from its float64 run by at most
  1.1e-6 on outputs of magnitude <= 2 (about 8e-7 of max|ref|), and our float32 results stay within
  1e-6 of max|ref| for the output and all three gradients on every shared case. The gradients with
  respect to the locations are up to ~100 in magnitude (they scale with the level width), so a
  bound relative to max|ref| rather than a fixed atol is what keeps them comparable. 10x headroom
  covers a different summation order on other backends; a wrong corner, weight or border rule
  gives errors of order 1e-2..1 of max|ref|.
* float64: ``1e-10``. The reference reproduces the float64 fixtures to ~1e-15 of max|ref|.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from kernels.ms_deform_attn.api import COMPUTE_DTYPES, ms_deform_attn, normalize_spatial_shapes
from kernels.ms_deform_attn.shapes import SpatialShapes
from kernels.report import Row, Tolerance, compare

# Stored tensor name -> short label used in table rows.
CHECKED_TENSORS: dict[str, str] = {
    "output": "out",
    "grad_value": "d_value",
    "grad_sampling_locations": "d_loc",
    "grad_attention_weights": "d_attn",
}

# Allowed error as a fraction of max|ref|, per compute dtype (see the module docstring).
RELATIVE_TOLERANCE: dict[str, float] = {"float32": 1e-5, "float64": 1e-10}


@dataclasses.dataclass(frozen=True)
class MSDACase:
    """One golden case: float64 inputs, cotangent and the expected results."""

    name: str
    spatial_shapes: SpatialShapes
    value: np.ndarray
    sampling_locations: np.ndarray
    attention_weights: np.ndarray
    cotangent: np.ndarray
    expected: dict[str, np.ndarray]  # keyed by CHECKED_TENSORS names


def list_cases(root: str) -> list[str]:
    """Case names in the order ``root/index.json`` lists them."""
    with open(os.path.join(root, "index.json")) as f:
        index = json.load(f)
    return [entry["case"] for entry in index["cases"]]


def load_case(root: str, name: str) -> MSDACase:
    """Read ``root/<name>.npz``."""
    with np.load(os.path.join(root, f"{name}.npz")) as data:
        arrays = {key: data[key] for key in data.files}
    return MSDACase(
        name=name,
        spatial_shapes=normalize_spatial_shapes(arrays["spatial_shapes"]),
        value=arrays["value"],
        sampling_locations=arrays["sampling_locations"],
        attention_weights=arrays["attention_weights"],
        cotangent=arrays["cotangent"],
        expected={key: arrays[key] for key in CHECKED_TENSORS},
    )


@functools.lru_cache(maxsize=64)
def output_and_grads_fn(spatial_shapes: SpatialShapes, implementation: str = "auto"):
    """Jitted (value, locations, weights, cotangent) -> (output, grad_value, grad_locations,
    grad_weights), the gradients being those of ``sum(output * cotangent)``. Cached per
    (spatial_shapes, implementation) so repeated checks reuse the compiled function."""

    def core(value, locations, weights):
        return ms_deform_attn(
            value, spatial_shapes, locations, weights, implementation=implementation
        )

    def run(value, locations, weights, cotangent):
        out, vjp = jax.vjp(core, value, locations, weights)
        return (out, *vjp(cotangent.astype(out.dtype)))

    return jax.jit(run)


def run_case(case: MSDACase, implementation: str, dtype: str) -> dict[str, np.ndarray]:
    """Output and the three gradients of ``case`` with inputs cast to ``dtype``, as float64."""
    with jax.enable_x64(dtype == "float64"):
        inputs = [
            jnp.asarray(a, dtype)
            for a in (case.value, case.sampling_locations, case.attention_weights, case.cotangent)
        ]
        results = output_and_grads_fn(case.spatial_shapes, implementation)(*inputs)
        return {
            key: np.asarray(result, np.float64)
            for key, result in zip(CHECKED_TENSORS, results, strict=True)
        }


def tolerance_for(reference: np.ndarray, dtype: str) -> Tolerance:
    """``RELATIVE_TOLERANCE[dtype] * max|reference|`` as an absolute bound."""
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    return Tolerance(atol=RELATIVE_TOLERANCE[dtype] * scale)


def supports(implementation: str, dtype: str) -> bool:
    """Whether ``implementation`` computes in ``dtype`` (pallas_tpu has no float64)."""
    return dtype in COMPUTE_DTYPES[implementation]


def check_case(case: MSDACase, implementation: str, dtype: str) -> list[Row]:
    """One comparison row per checked tensor of ``case``."""
    ours = run_case(case, implementation, dtype)
    rows = []
    for key, label in CHECKED_TENSORS.items():
        ref = case.expected[key]
        tol = tolerance_for(ref, dtype)
        row = compare(f"{case.name}/{implementation}/{dtype}/{label}", ours[key], ref, tol)
        criterion = f"{RELATIVE_TOLERANCE[dtype]:g}*max|ref| ({tol.atol:.2e})"
        rows.append(dataclasses.replace(row, criterion=criterion))
    return rows
