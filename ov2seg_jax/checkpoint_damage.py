"""Damaged or incomplete Orbax checkpoints, reported in one line.

An interrupted copy or save leaves a checkpoint folder with a file missing or cut short. Orbax
then fails deep inside its asynchronous machinery: a TensorStore error about byte ranges, or
tree metadata that reads as ``None`` (a ``TypeError`` far from the cause), while the reads still
in flight report "Event loop is closed" through ``sys.unraisablehook``, hundreds of times.

:func:`reading` turns such failures into :class:`CheckpointDamagedError`, whose one-line message
names the folder, the entry that failed (a parameter path such as
``params.backbone.conv1.kernel``, or a file such as ``variables/manifest.ocdbt``) and what to do.
When Orbax's error names no entry, the folder is examined: its metadata files, then the OCDBT
index, read through TensorStore, which names the file it could not read.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator

# Files every Orbax PyTree item folder holds (the index files under d/ are named by the manifest).
_ITEM_FILES = ("_METADATA", "manifest.ocdbt")
_ERROR_READING = re.compile(r'Error reading "([^"]+)"')
_LOCAL_FILE = re.compile(r'of local file "([^"]+)"')
_CHUNK = re.compile(r"/[0-9.]+$")  # "params.x.kernel/0.0.0.0": the array, chunk 0.0.0.0


class CheckpointDamagedError(ValueError):
    """A checkpoint folder is damaged or incomplete (a file missing, cut short or unreadable)."""

    def __init__(self, directory: str, entry: str, reason: str, advice: str) -> None:
        self.directory, self.entry, self.reason, self.advice = directory, entry, reason, advice
        super().__init__(f"{directory} is damaged or incomplete: {entry}: {reason}; {advice}")


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _reason_from_status(message: str) -> str:
    """TensorStore's ``CODE: ... : detail`` as a short reason."""
    code = message.split(":", 1)[0].strip()
    detail = message.rsplit(": ", 1)[-1].strip()
    if code == "NOT_FOUND":
        return "a file of its data is missing"
    if code == "OUT_OF_RANGE":
        return f"a file of its data is cut short ({_first_line(detail)})"
    return f"its data cannot be read ({_first_line(detail)})"


def _relative(path: str, root: str) -> str:
    try:
        return os.path.relpath(path, root)
    except ValueError:  # another drive (Windows)
        return path


def describe_failure(directory: str, item_dir: str, exc: BaseException) -> tuple[str, str]:
    """(entry, reason) for Orbax's ``exc`` while reading the item folder ``item_dir``.

    The TensorStore error that names the entry may sit in the exception's chain (Orbax wraps it
    in a bare ``Exception`` when restoring sharded arrays)."""
    message = str(exc)
    for link in _chain(exc):
        text = str(link)
        local = _LOCAL_FILE.search(text)
        if local:
            return _relative(local.group(1), directory), _reason_from_status(text)
        named = _ERROR_READING.search(text)
        if named:
            return _CHUNK.sub("", named.group(1)), _reason_from_status(text)
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return _relative(os.fspath(exc.filename), directory), "missing"
    found = examine_item(item_dir)
    if found is not None:
        entry, reason = found
        return _relative(entry, directory), reason
    return _relative(item_dir, directory), f"{type(exc).__name__}: {_first_line(message)}"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in seen:
        seen.append(link)
        link = link.__cause__ or link.__context__
    return seen


def examine_item(item_dir: str) -> tuple[str, str] | None:
    """The first problem found in an Orbax PyTree item folder: (path, reason), or None."""
    if not os.path.isdir(item_dir):
        return item_dir, "missing"
    for name in _ITEM_FILES:
        path = os.path.join(item_dir, name)
        if not os.path.isfile(path):
            return path, "missing"
    try:
        with open(os.path.join(item_dir, "_METADATA"), encoding="utf-8") as f:
            json.load(f)
    except (OSError, ValueError) as e:
        return os.path.join(item_dir, "_METADATA"), f"unreadable ({_first_line(str(e))})"
    try:
        import tensorstore as ts

        store = ts.KvStore.open(
            {"driver": "ocdbt", "base": "file://" + os.path.abspath(item_dir) + "/"}
        ).result()
        store.list().result()
    except ImportError:  # pragma: no cover - tensorstore comes with orbax
        return None
    except Exception as e:  # TensorStore reports every failure as ValueError
        local = _LOCAL_FILE.search(str(e))
        return (local.group(1) if local else item_dir), _reason_from_status(str(e)).replace(
            "a file of its data is", "the index file is"
        )
    return None


def quiet_closed_loop_reports() -> None:
    """Drop the "Event loop is closed" reports of reads still in flight when Orbax closed its
    event loop after an error. Installed process-wide in front of the current
    ``sys.unraisablehook`` (again if something replaced it); every other report goes on to it."""
    previous = sys.unraisablehook
    if getattr(previous, "drops_closed_loop_reports", False):
        return

    def hook(unraisable) -> None:
        exc = unraisable.exc_value
        if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
            return
        previous(unraisable)

    hook.drops_closed_loop_reports = True
    sys.unraisablehook = hook


def check_item(directory: str, item_dir: str, advice: str) -> None:
    """Raise :class:`CheckpointDamagedError` if :func:`examine_item` finds a problem (before
    Orbax reads the folder: its own failures on missing metadata log warnings first)."""
    found = examine_item(item_dir)
    if found is not None:
        entry, reason = found
        raise CheckpointDamagedError(directory, _relative(entry, directory), reason, advice)


@contextlib.contextmanager
def reading(directory: str, item_dir: str, advice: str) -> Iterator[None]:
    """Run Orbax reads of ``item_dir`` (inside ``directory``); their failures become one
    :class:`CheckpointDamagedError` ending with ``advice``."""
    quiet_closed_loop_reports()
    try:
        yield
    except CheckpointDamagedError:
        raise
    except Exception as e:  # Orbax raises bare Exception, ValueError, TypeError, OSError...
        entry, reason = describe_failure(directory, item_dir, e)
        raise CheckpointDamagedError(directory, entry, reason, advice) from e
