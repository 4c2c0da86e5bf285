"""Reading and cleaning vocabularies (lists of category names).

A vocabulary is given either as a comma-separated string (``"cat,dog,skateboard"``) or as a text
file with one name per line (blank lines and lines starting with ``#`` are skipped; text after a
`` #`` on a line is kept, since some category names could contain ``#``).

Names are cleaned the way LVIS-style identifiers are usually turned into prompt text:

* underscores become spaces: ``aerosol_can`` -> ``aerosol can``;
* parenthesised qualifiers are **kept**, with the brackets: ``bow_(weapon)`` -> ``bow (weapon)``.
  The qualifier disambiguates homonyms (``bow (weapon)`` vs ``bow (decorative ribbons)``), and
  dropping only the brackets would make it read as part of the name;
* runs of whitespace collapse to one space, spaces just inside brackets are removed, and the name
  is stripped. Case is preserved (CLIP's tokenizer lowercases anyway).

Duplicates are detected on the cleaned, case-folded names, because those give identical rows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence

_SPACES = re.compile(r"\s+")


def clean_name(name: str) -> str:
    """Turn a raw category identifier into the text put into the prompt templates."""
    text = name.replace("_", " ")
    text = _SPACES.sub(" ", text).strip()
    text = text.replace("( ", "(").replace(" )", ")")
    # "bow(weapon)" -> "bow (weapon)" so both spellings give the same prompt.
    text = re.sub(r"(?<=\S)\(", " (", text)
    return text


def prepare_names(names: Iterable[str], source: str = "names") -> list[str]:
    """Clean ``names`` and check the vocabulary is usable; returns the cleaned names in order.

    Args:
        names: raw category names.
        source: how to name the vocabulary in error messages (e.g. a file path).

    Raises:
        ValueError: if the vocabulary is empty, a name is empty after cleaning, or two names are the
            same after cleaning (case-insensitively).
    """
    if isinstance(names, str):
        raise ValueError(
            f"{source}: expected a sequence of names, got the string {names!r} "
            "(use load_vocabulary() to parse a comma-separated string or a file)"
        )
    cleaned: list[str] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(names):
        if not isinstance(raw, str):
            raise ValueError(f"{source}: entry {index} is {type(raw).__name__}, not a string")
        name = clean_name(raw)
        if not name:
            raise ValueError(f"{source}: entry {index} ({raw!r}) is empty after cleaning")
        key = name.casefold()
        if key in seen:
            first = seen[key]
            raise ValueError(
                f"{source}: entry {index} ({raw!r}) duplicates entry {first} "
                f"({cleaned[first]!r}) after cleaning; each category must be named once"
            )
        seen[key] = index
        cleaned.append(name)
    if not cleaned:
        raise ValueError(f"{source}: the vocabulary is empty; give at least one category name")
    return cleaned


def parse_names(text: str) -> list[str]:
    """Split a comma-separated vocabulary string into raw names (surrounding spaces stripped).

    Empty items (``"cat,,dog"``, a trailing comma) are errors, caught by :func:`prepare_names`.
    """
    items = [item.strip() for item in text.split(",")]
    if items and items[-1] == "" and len(items) > 1:
        items.pop()  # tolerate one trailing comma: "cat,dog,"
    return items


def read_names_file(path: str | os.PathLike[str]) -> list[str]:
    """Read raw names from a text file: one per line, blank lines and ``#`` comment lines skipped.

    Raises:
        FileNotFoundError: naming ``path`` if it does not exist.
        ValueError: naming ``path`` if it is not UTF-8 text.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"vocabulary file {path!r} does not exist (or is not a file)")
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"vocabulary file {path!r} is not UTF-8 text: {exc}") from exc
    names = []
    for line in lines:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            names.append(stripped)
    return names


def _looks_like_path(spec: str) -> bool:
    return spec.endswith(".txt") or spec.startswith(("/", "~", "./", "../"))


def load_vocabulary(spec: str | os.PathLike[str] | Sequence[str]) -> list[str]:
    """Read a vocabulary the way users give it and return the cleaned names.

    ``spec`` may be a path to a text file (one name per line), a comma-separated string such as
    ``"cat,dog,skateboard"``, or already a sequence of names. A string naming an existing file is
    read as a file; a comma-free string that looks like a path (ends in ``.txt``, or starts with
    ``/``, ``~``, ``./`` or ``../``) but names no file is an error rather than a one-name
    vocabulary.

    Raises:
        FileNotFoundError: for a missing vocabulary file.
        ValueError: for an empty vocabulary, empty names or duplicates.
    """
    if isinstance(spec, os.PathLike):
        path = os.fspath(spec)
        return prepare_names(read_names_file(path), source=f"vocabulary file {path!r}")
    if isinstance(spec, str):
        expanded = os.path.expanduser(spec)
        if os.path.isfile(expanded):
            return prepare_names(read_names_file(expanded), source=f"vocabulary file {spec!r}")
        if "," not in spec and _looks_like_path(spec):
            raise FileNotFoundError(f"vocabulary file {spec!r} does not exist")
        return prepare_names(parse_names(spec), source=f"vocabulary {spec!r}")
    return prepare_names(spec)
