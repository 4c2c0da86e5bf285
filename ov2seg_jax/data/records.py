"""Plain training records shared by every dataset reader, and the tally of skipped bad data.

A record is one training unit: an image (a one-frame video) or a video. Each instance is a track
with one contiguous category index (the row of the text classifier) and one raw segmentation per
frame (COCO polygons, an RLE dict, or ``None`` where the instance is absent). Segmentations stay
undecoded until an example is loaded, so a reader holds LVIS-sized datasets in memory cheaply.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

# Raw COCO segmentation: list of polygons (flat [x0, y0, x1, y1, ...]) or an RLE dict.
Segmentation = Any


@dataclasses.dataclass(frozen=True)
class InstanceTrack:
    """One object: contiguous ``category`` and one segmentation (or None) per frame."""

    category: int
    segmentations: tuple[Segmentation | None, ...]


@dataclasses.dataclass(frozen=True)
class TrainRecord:
    """An image (``len(frame_paths) == 1``) or a video, with its annotated instances.

    ``height``/``width`` are the annotated frame size every frame must have on disk.
    """

    record_id: int
    frame_paths: tuple[str, ...]
    height: int
    width: int
    instances: tuple[InstanceTrack, ...]

    @property
    def categories(self) -> frozenset[int]:
        return frozenset(t.category for t in self.instances)


@dataclasses.dataclass(frozen=True)
class TrainDataset:
    """Records plus the category table (contiguous index = position, i.e. classifier row).

    ``partition[i]`` is ``"base"`` or ``"novel"``; ``frequency_weight[i]`` is the federated class
    loss weight (image count ** 0.5; 0 for categories left out of training).
    """

    name: str
    json_path: str
    image_root: str
    records: tuple[TrainRecord, ...]
    category_ids: tuple[int, ...]
    category_names: tuple[str, ...]
    partition: tuple[str, ...]
    frequency_weight: tuple[float, ...]
    is_video: bool
    problems: dict[str, int]


class ProblemTally:
    """Counts skipped bad data by kind and logs the first few occurrences of each kind.

    Safe to share between the threads that load examples.
    """

    def __init__(self, max_logged: int = 5):
        self.counts: collections.Counter[str] = collections.Counter()
        self.max_logged = max_logged
        self._lock = threading.Lock()

    def add(self, kind: str, detail: str) -> None:
        with self._lock:
            self.counts[kind] += 1
            n = self.counts[kind]
        if n <= self.max_logged:
            log.warning("skipped (%s): %s", kind, detail)
        elif n == self.max_logged + 1:
            log.warning("more '%s' problems; further ones are only counted", kind)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)
