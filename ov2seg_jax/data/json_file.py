"""Reading an annotation json with errors that name the file."""

from __future__ import annotations

import json
import os


def read_json(path: str) -> dict:
    """A json annotation file, with an error naming the file when missing or malformed."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level")
    return data
