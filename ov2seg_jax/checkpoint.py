"""Model checkpoints for inference: Orbax variables plus the text classifier and architecture.

Layout of a model directory::

    DIR/variables/        Orbax checkpoint of {"params": ..., "frozen": ...}
    DIR/model_config.json the ``config.model`` it was made for (architecture check on restore)
    DIR/classifier.npy    (C, D) text embeddings that came with the checkpoint (optional)

Restoring goes against ``jax.eval_shape`` targets built from the config, so a checkpoint of
another architecture fails with a list of what differs instead of a deep Orbax error. A damaged
or incomplete directory (a file missing or cut short by an interrupted copy) fails with one line
naming the directory and the entry that failed (:class:`CheckpointDamagedError`).
"""

from __future__ import annotations

import json
import os

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from ov2seg_jax.atomic_file import atomic_write
from ov2seg_jax.checkpoint_damage import CheckpointDamagedError, check_item, reading
from ov2seg_jax.convert.converter import flatten_paths

VARIABLES = "variables"
MODEL_CONFIG = "model_config.json"
CLASSIFIER = "classifier.npy"
_ADVICE = "convert the checkpoint again (--mode convert) or copy the directory again"

__all__ = ["CheckpointDamagedError", "CheckpointMismatchError"]


class CheckpointMismatchError(ValueError):
    """The checkpoint on disk does not fit the model the config describes."""


def save_model(
    directory: str,
    variables,
    model_cfg: ml_collections.ConfigDict,
    classifier: np.ndarray | None = None,
) -> str:
    """Write the model directory (overwrites an existing one); returns its absolute path.

    In a process group every process calls it (Orbax synchronises them); process 0 writes.
    """
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(os.path.join(directory, VARIABLES), variables, force=True)
    if jax.process_index() != 0:
        return directory
    with atomic_write(os.path.join(directory, MODEL_CONFIG)) as f:
        f.write(model_cfg.to_json(indent=2))
    if classifier is not None:
        with atomic_write(os.path.join(directory, CLASSIFIER), "wb") as f:
            np.save(f, np.asarray(classifier, np.float32), allow_pickle=False)
    return directory


def load_model_config(directory: str) -> ml_collections.ConfigDict:
    path = os.path.join(directory, MODEL_CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found: {directory} is not a model directory "
            "written by --mode convert (or training)"
        )
    try:
        with open(path) as f:
            return ml_collections.ConfigDict(json.load(f))
    except (OSError, ValueError) as e:
        raise CheckpointDamagedError(
            os.path.abspath(directory), MODEL_CONFIG, f"unreadable ({e})", _ADVICE
        ) from e


def load_model(directory: str, abstract_variables) -> dict:
    """Restore the variables of ``directory`` onto the shapes of ``abstract_variables``."""
    directory = os.path.abspath(directory)
    path = os.path.join(directory, VARIABLES)
    check_item(directory, path, _ADVICE)
    with ocp.StandardCheckpointer() as ckptr:
        with reading(directory, path, _ADVICE):
            stored = ckptr.metadata(path)
            stored_tree = dict(getattr(stored, "item_metadata", stored))
        want = {k: tuple(v.shape) for k, v in flatten_paths(abstract_variables).items()}
        have = {k: tuple(v.shape) for k, v in flatten_paths(stored_tree).items()}
        problems = [f"missing in checkpoint: {k}" for k in sorted(set(want) - set(have))]
        problems += [f"not in model: {k}" for k in sorted(set(have) - set(want))]
        problems += [
            f"shape of {k}: checkpoint {have[k]} vs model {want[k]}"
            for k in sorted(set(want) & set(have))
            if want[k] != have[k]
        ]
        if problems:
            shown = "\n  ".join(problems[:20])
            raise CheckpointMismatchError(
                f"{path} does not fit this config's model ({len(problems)} differences):\n  {shown}"
            )
        with reading(directory, path, _ADVICE):
            return ckptr.restore(
                path,
                jax.tree_util.tree_map(
                    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), abstract_variables
                ),
            )


def load_classifier(directory: str) -> np.ndarray | None:
    """The classifier saved with the model (None if it came without one)."""
    path = os.path.join(directory, CLASSIFIER)
    if not os.path.isfile(path):
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise CheckpointDamagedError(
            os.path.abspath(directory), CLASSIFIER, f"unreadable ({e})", _ADVICE
        ) from e
