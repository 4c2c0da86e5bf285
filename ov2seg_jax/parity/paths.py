"""Where the shared golden fixtures and metadata live.

Both default to the ``shared/`` folder beside the checkout; the environment variables
``OV2SEG_FIXTURES`` and ``OV2SEG_METADATA`` override them.
"""

from __future__ import annotations

import os

_SHARED = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared")
)


def fixtures_dir() -> str:
    return os.environ.get("OV2SEG_FIXTURES") or os.path.join(_SHARED, "fixtures")


def metadata_dir() -> str:
    return os.environ.get("OV2SEG_METADATA") or os.path.join(_SHARED, "metadata")
