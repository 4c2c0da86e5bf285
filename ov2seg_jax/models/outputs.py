"""Typed model outputs; names and meanings as the original's output dict."""

from __future__ import annotations

import flax.struct
import jax


@flax.struct.dataclass
class HeadOutputs:
    """Predictions of the heads at one decoder stage, for N frames and Q queries.

    pred_logits (N, Q, C + 1): class logits, the last column "no object" (always 0).
    pred_object_logits (N, Q, 2): objectness logits, index 0 = object.
    pred_masks (N, Q, H/4, W/4): mask logits at stride 4 of the padded frame.
    """

    pred_logits: jax.Array
    pred_object_logits: jax.Array
    pred_masks: jax.Array


@flax.struct.dataclass
class ModelOutputs:
    """Final-layer predictions plus ``pred_embds`` and the earlier stages.

    pred_embds (N, Q, hidden): decoder output after its final LayerNorm (used for tracking).
    aux_outputs: heads applied to the learnable queries (index 0) and after every decoder layer
    but the last (index k = after layer k), as in the original's ``aux_outputs``.
    """

    pred_logits: jax.Array
    pred_object_logits: jax.Array
    pred_masks: jax.Array
    pred_embds: jax.Array
    aux_outputs: tuple[HeadOutputs, ...] = ()
