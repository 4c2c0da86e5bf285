"""The synthetic category table: 8 colours x 8 shapes, 16 novel pairs (a Latin square), and the
balanced per-video draw of categories for each split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ov2seg_jax.data.synthetic.spec import SPLITS, SyntheticSpec, check_split

COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (230, 30, 30)),
    ("green", (40, 190, 50)),
    ("blue", (40, 80, 240)),
    ("yellow", (240, 220, 30)),
    ("magenta", (225, 40, 225)),
    ("cyan", (40, 220, 230)),
    ("orange", (255, 140, 20)),
    ("white", (245, 245, 245)),
)
SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "hexagon",
    "diamond",
    "cross",
    "ring",
)
NOVEL_SHAPE_OFFSETS = (2, 5)  # colour c is novel with shapes (c + 2) % 8 and (c + 5) % 8
PARTITION_BASE = 0
PARTITION_NOVEL = 2


def category_id(colour: int, shape: int) -> int:
    """Dataset id (1-based) of the pair ``(colour index, shape index)``."""
    return 1 + colour * len(SHAPES) + shape


def novel_pairs() -> tuple[tuple[str, str], ...]:
    """The 16 held-out ``(colour, shape)`` pairs, in category id order."""
    pairs = []
    for c, (colour, _) in enumerate(COLOURS):
        for s in sorted((c + k) % len(SHAPES) for k in NOVEL_SHAPE_OFFSETS):
            pairs.append((colour, SHAPES[s]))
    return tuple(pairs)


def categories() -> list[dict]:
    """All 64 categories in id order: ``{id, name, partition, colour, shape}``."""
    novel = set(novel_pairs())
    out = []
    for c, (colour, _) in enumerate(COLOURS):
        for s, shape in enumerate(SHAPES):
            part = PARTITION_NOVEL if (colour, shape) in novel else PARTITION_BASE
            out.append(
                {
                    "id": category_id(c, s),
                    "name": f"{colour} {shape}",
                    "partition": part,
                    "colour": colour,
                    "shape": shape,
                }
            )
    return out


def category_names() -> list[str]:
    """The 64 names ``"<colour> <shape>"`` in id order (row order of the text classifier)."""
    return [c["name"] for c in categories()]


def split_category_ids(partition: int) -> list[int]:
    """Ids of the base (:data:`PARTITION_BASE`) or novel (:data:`PARTITION_NOVEL`) categories."""
    return [c["id"] for c in categories() if c["partition"] == partition]


def _balanced_draw(rng: np.random.Generator, ids: Sequence[int], count: int) -> list[int]:
    """``count`` ids cycling through fresh random permutations of ``ids`` (balanced counts)."""
    out: list[int] = []
    while len(out) < count:
        out.extend(int(i) for i in rng.permutation(np.asarray(ids)))
    return out[:count]


def assign_categories(spec: SyntheticSpec, seed: int, split: str) -> list[list[int]]:
    """Category ids of the objects of every video of ``split`` (depth order is drawn later).

    Train draws only base categories; val draws a ``val_novel_fraction`` share of novel ones.
    Both cycle through shuffled category lists, so counts per category differ by at most one
    within each group.
    """
    check_split(split)
    rng = np.random.default_rng([seed, SPLITS.index(split), 0])
    counts = rng.integers(spec.min_objects, spec.max_objects + 1, size=spec.num_videos(split))
    total = int(counts.sum())
    base = split_category_ids(PARTITION_BASE)
    if split == "train":
        slots = _balanced_draw(rng, base, total)
    else:
        num_novel = int(round(total * spec.val_novel_fraction))
        novel = split_category_ids(PARTITION_NOVEL)
        slots = _balanced_draw(rng, novel, num_novel) + _balanced_draw(rng, base, total - num_novel)
        slots = [slots[i] for i in rng.permutation(total)]
    out, start = [], 0
    for n in counts:
        out.append(slots[start : start + int(n)])
        start += int(n)
    return out
