"""Shape buckets of an export: one compiled network per (window, padded height, padded width,
number of classes).

A bucket is written ``WINDOWxHEIGHTxWIDTHxCLASSES`` (``10x480x864x1196``): ``window`` frames per
network call (a shorter last window is padded with zero frames, as the live predictor does),
frames padded to ``height`` x ``width`` (multiples of the network stride, 32), and a text
classifier of ``num_classes`` rows.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, order=True)
class Bucket:
    window: int
    height: int
    width: int
    num_classes: int

    @property
    def name(self) -> str:
        return f"{self.window}x{self.height}x{self.width}x{self.num_classes}"

    def check(self, stride: int) -> Bucket:
        """``self`` after checking every field is positive and the sides are multiples of
        ``stride``; ValueError naming the bucket otherwise."""
        if min(self.window, self.height, self.width, self.num_classes) < 1:
            raise ValueError(f"bucket {self.name}: every field must be positive")
        if self.height % stride or self.width % stride:
            raise ValueError(
                f"bucket {self.name}: height and width must be multiples of the network stride "
                f"{stride} (the padded frame size)"
            )
        return self


def signature_name(bucket: Bucket) -> str:
    """The bucket's signature in the TF SavedModel."""
    return f"bucket_{bucket.name}"


def parse_bucket(text: str) -> Bucket:
    """``"10x480x864x1196"`` -> Bucket(10, 480, 864, 1196)."""
    parts = text.strip().lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise ValueError(
            f"bucket {text!r}: expected WINDOWxHEIGHTxWIDTHxCLASSES, e.g. 10x480x864x1196"
        )
    return Bucket(*values)


def parse_buckets(spec: str) -> list[Bucket]:
    """Comma-separated buckets, sorted, duplicates dropped; ValueError on an empty spec."""
    buckets = sorted({parse_bucket(p) for p in spec.split(",") if p.strip()})
    if not buckets:
        raise ValueError("no buckets: give WINDOWxHEIGHTxWIDTHxCLASSES[,...], e.g. 10x480x864x1196")
    return buckets


def describe(buckets) -> str:
    """``"4x64x96x5, 4x64x128x5"``: for error messages."""
    return ", ".join(b.name for b in sorted(buckets)) or "(none)"
