"""Write ``lvis/lvis_v1_train_norare.json``: LVIS v1 train without rare-category annotations.

Example::

    python -m data_prep.make_lvis_norare --root datasets

The original trains on this file (``DATASETS.TRAIN: lvis_v1_train_norare``), made from
``lvis_v1_train.json`` by removing every annotation whose category has ``frequency == "r"``;
images and the category list are kept as they are, so the contiguous category index stays
``id - 1`` (the rows of ``fg_bg_5_10_lvis_ens.npy``). The readers derive the same split on the
fly when this file is absent; writing it is only needed to share it with the original's code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from ov2seg_jax.atomic_file import atomic_write
from ov2seg_jax.data.json_file import read_json


def drop_rare(data: dict, source: str) -> tuple[dict, int]:
    """``data`` with the annotations of rare categories removed, and how many were removed."""
    for key in ("annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{source}: field '{key}' is missing or not a list")
    freq = {}
    for i, c in enumerate(data["categories"]):
        if "id" not in c or "frequency" not in c:
            raise ValueError(f"{source}: categories[{i}] lacks 'id' or 'frequency'")
        freq[c["id"]] = c["frequency"]
    kept = [a for a in data["annotations"] if freq.get(a.get("category_id")) != "r"]
    return {**data, "annotations": kept}, len(data["annotations"]) - len(kept)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep.make_lvis_norare")
    parser.add_argument("--root", default="datasets", help="folder holding lvis/")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    args = parser.parse_args(argv)
    src = os.path.join(args.root, "lvis", "lvis_v1_train.json")
    dst = os.path.join(args.root, "lvis", "lvis_v1_train_norare.json")
    if os.path.exists(dst) and not args.force:
        print(f"{dst} exists (use --force to rewrite it)")
        return 0
    try:
        out, removed = drop_rare(read_json(src), src)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with atomic_write(dst) as f:
        json.dump(out, f)
    print(f"{dst}: {len(out['annotations'])} annotations kept, {removed} rare ones removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
