"""The sizes of the synthetic dataset (:class:`SyntheticSpec`) and its split names."""

from __future__ import annotations

import dataclasses

import numpy as np

SPLITS = ("train", "val")


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """Sizes of the dataset. Object sizes are bounding extents in pixels."""

    num_train_videos: int = 300
    num_val_videos: int = 48
    num_frames: int = 8
    height: int = 128
    width: int = 128
    min_objects: int = 1
    max_objects: int = 4
    min_size: int = 18
    max_size: int = 40
    size_step: int = 4  # sizes within a video differ by at least this much
    max_speed: float = 4.0  # pixels per frame, per axis
    min_visible_fraction: float = 0.25  # resample a video (up to 30 times) below this
    val_novel_fraction: float = 0.5  # share of validation instances with a novel category
    jpeg_quality: int = 95
    text_dim: int = 512

    def __post_init__(self) -> None:
        ints = ("num_train_videos", "num_val_videos", "num_frames", "height", "width")
        ints += ("min_objects", "max_objects", "min_size", "max_size", "size_step", "jpeg_quality")
        for name in (*ints, "text_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"SyntheticSpec.{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))  # plain ints: the manifest is JSON
        for name in ("max_speed", "min_visible_fraction", "val_novel_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ValueError(f"SyntheticSpec.{name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("num_frames", "height", "width", "min_objects", "size_step", "text_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"SyntheticSpec.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_train_videos", "num_val_videos"):
            if getattr(self, name) < 0:
                raise ValueError(f"SyntheticSpec.{name} must be >= 0, got {getattr(self, name)}")
        if self.max_objects < self.min_objects:
            raise ValueError(
                f"SyntheticSpec.max_objects ({self.max_objects}) < min_objects ({self.min_objects})"
            )
        if not 4 <= self.min_size <= self.max_size <= min(self.height, self.width):
            raise ValueError(
                f"SyntheticSpec sizes need 4 <= min_size <= max_size <= min(height, width); got "
                f"min_size={self.min_size}, max_size={self.max_size}, "
                f"height={self.height}, width={self.width}"
            )
        if len(self.size_grid()) < self.max_objects:
            raise ValueError(
                f"SyntheticSpec: sizes {self.min_size}..{self.max_size} in steps of "
                f"{self.size_step} give {len(self.size_grid())} distinct sizes, fewer than "
                f"max_objects={self.max_objects}"
            )
        if not self.max_speed >= 0:
            raise ValueError(f"SyntheticSpec.max_speed must be >= 0, got {self.max_speed}")
        for name in ("min_visible_fraction", "val_novel_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"SyntheticSpec.{name} must be in [0, 1], got {getattr(self, name)}"
                )
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(
                f"SyntheticSpec.jpeg_quality must be in [1, 100], got {self.jpeg_quality}"
            )

    def size_grid(self) -> np.ndarray:
        """The object sizes a video draws from (without replacement)."""
        return np.arange(self.min_size, self.max_size + 1, self.size_step)

    def num_videos(self, split: str) -> int:
        check_split(split)
        return self.num_train_videos if split == "train" else self.num_val_videos


def check_split(split: str) -> None:
    """Raise ValueError unless ``split`` is one of :data:`SPLITS`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
