"""Reading config sections: every field is required, defaults live in ``configs/`` only.

Code never falls back to a value of its own (no ``config.get(key, default)``): a field a config
lacks is a :class:`MissingConfigField` naming it, raised before any work starts.

* :func:`check_complete`: every field of a reference config (``configs/ov2seg_r50_lvvis.py``,
  the config every other one starts from) is present in a run's config; run by the entry point.
* :func:`from_section`: a dataclass built from a config section, one name per field on both
  sides (the section may hold more fields, for other readers); missing fields are named.
* :func:`require`: the named fields of a section, checked before they are read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class MissingConfigField(ValueError):
    """A config lacks a field the code reads; the message names every missing field."""


def _keys(section: Any) -> set[str]:
    if section is None:
        return set()
    return set(section.keys()) if hasattr(section, "keys") else set()


def require(section: Mapping | None, where: str, names: Iterable[str]) -> None:
    """Raise :class:`MissingConfigField` naming ``where.name`` for each of ``names`` absent from
    ``section``."""
    have = _keys(section)
    missing = [n for n in names if n not in have]
    if missing:
        fields = ", ".join(f"{where}.{n}" for n in missing)
        raise MissingConfigField(f"the config lacks {fields} (every field must be set in configs/)")


def from_section(cls: type[T], section: Mapping | None, where: str, **overrides: Any) -> T:
    """``cls`` (a dataclass) with each init field read from the same-named key of ``section``.

    ``overrides`` replace fields after the check (a test's smaller sizes); unknown override names
    are a TypeError, as for the dataclass itself.
    """
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    require(section, where, [n for n in names if n not in overrides])
    values = {n: section[n] for n in names if n not in overrides}
    return cls(**values, **overrides)


def missing_fields(config: Mapping, reference: Mapping, prefix: str = "") -> list[str]:
    """Dotted paths of every field of ``reference`` that ``config`` lacks (sections recursed)."""
    out = []
    have = _keys(config)
    for key in reference.keys():
        path = f"{prefix}{key}"
        if key not in have:
            out.append(path)
            continue
        ref_value, value = reference[key], config[key]
        if hasattr(ref_value, "keys") and hasattr(value, "keys"):
            if "name" in ref_value.keys() and value.get("name") != ref_value["name"]:
                continue  # another variant (e.g. a Swin backbone): its own fields are its reader's
            out.extend(missing_fields(value, ref_value, path + "."))
    return out


def check_complete(config: Mapping, reference: Mapping, where: str = "config") -> None:
    """Raise :class:`MissingConfigField` listing every field of ``reference`` absent from
    ``config``. A section with a ``name`` that differs from the reference's (another backbone) is
    not compared: the code that reads it names its own fields."""
    missing = missing_fields(config, reference)
    if missing:
        fields = ", ".join(f"{where}.{p}" for p in missing)
        raise MissingConfigField(
            f"the config lacks {fields} (every config carries the fields of "
            "configs/ov2seg_r50_lvvis.py)"
        )
