"""The one tolerance policy of every parity check against the original (float32 end to end).

The fixtures record how far the original's own float32 run is from its float64 rerun: backbone
and pixel decoder <= 3.8e-6 (magnitudes 2..8), class logits <= 1.2e-5 (magnitude <= 10, the
temperature of 50 amplifies feature errors), embeddings <= 2.8e-6, mask logits <= 2.7e-5
(magnitude <= 21), final scores <= 1.1e-6; the same model with the frame batched differently moves
logits by 1e-5 and mask logits by 3e-5. Two float32 implementations that sum in different orders
are each that far from the exact answer, so we allow ~10x the recorded float32 error. A wrong
detail (GELU variant, an eps, an index order) moves these tensors by 1e-3 or more.
"""

from __future__ import annotations

from ov2seg_jax.parity.report import Tolerance

FEATURES = Tolerance(atol=1e-4, rtol=1e-4)  # backbone, pixel decoder, Swin unit case
LOGITS = Tolerance(atol=2e-4)  # class and object logits, query embeddings
MASK_LOGITS = Tolerance(atol=5e-4)
SCORES = Tolerance(atol=1e-5)
MAX_MASK_PIXEL_FRACTION = 1e-4  # final binary masks: share of pixels allowed to differ
