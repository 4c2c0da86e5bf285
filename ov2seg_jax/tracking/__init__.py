"""Video tracking and instance read-out of OV2Seg (host-side numpy, as the original's CPU step).

* :mod:`~ov2seg_jax.tracking.matching`: embedding-cosine Hungarian matching of queries to slots.
* :mod:`~ov2seg_jax.tracking.tracker`: the streaming tracker (:func:`track_window`,
  :func:`track_video`).
* :mod:`~ov2seg_jax.tracking.readout`: top-K instance read-out and the final mask resize.
"""

from ov2seg_jax.tracking.matching import (
    Match,
    embedding_cost,
    match_embeddings,
    solve_assignment,
)
from ov2seg_jax.tracking.readout import (
    InstanceResult,
    instance_inference,
    iter_masks_to_output,
    masks_to_output,
)
from ov2seg_jax.tracking.tracker import (
    AlignedWindow,
    TrackerState,
    TrackResult,
    track_video,
    track_window,
)

__all__ = [
    "AlignedWindow",
    "InstanceResult",
    "Match",
    "TrackResult",
    "TrackerState",
    "embedding_cost",
    "instance_inference",
    "iter_masks_to_output",
    "masks_to_output",
    "match_embeddings",
    "solve_assignment",
    "track_video",
    "track_window",
]
