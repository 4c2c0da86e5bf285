"""Reading JSON input: whole small files, and large result lists streamed item by item.

A results file of a large video set is hundreds of megabytes of JSON; loading it whole costs
the file, its text and every parsed object at once. :class:`JsonArrayStream` reads the file in
chunks and decodes one item (one result) at a time with the standard library's C scanner.

The text is decoded as latin-1, so a character offset is a byte offset: a byte range of the file
can be given to another process, which starts at an item boundary found by
:func:`find_item_start`. Non-ASCII text only occurs inside JSON strings, which the evaluators
either ignore or require to be ASCII (RLE counts), so this changes no value they read.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from .errors import EvalInputError

CHUNK_BYTES = 1 << 23
_NOT_SPACE = re.compile(r"[^ \t\n\r]")
_DECODER = json.JSONDecoder()


def read_json(path: str | os.PathLike) -> Any:
    """Parse a whole JSON file; a missing file or bad JSON raises :class:`EvalInputError`."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except OSError as err:
        raise EvalInputError(path, None, f"cannot read file ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise EvalInputError(path, None, f"not UTF-8 text ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise EvalInputError(
            path, None, f"malformed JSON at line {err.lineno} column {err.colno}: {err.msg}"
        ) from None


class JsonArrayStream:
    """Items of the JSON array in ``path``, from byte ``begin`` up to (not including) ``end``.

    ``begin`` is 0 (the file starts with ``[``) or the offset of an item. Iteration stops at the
    first item that starts at or after ``end``; its offset is then in :attr:`stop_offset`
    (``None`` when the array ended first).
    """

    def __init__(
        self,
        path: str,
        source: str,
        begin: int = 0,
        end: int | None = None,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self.path = path
        self.source = source
        self.begin = begin
        self.end = end
        self.chunk_bytes = chunk_bytes
        self.stop_offset: int | None = None
        self._text = ""
        self._base = begin  # file offset of self._text[0]
        self._eof = False
        self._file: Any = None

    # -- buffer -------------------------------------------------------------------------------
    def _refill(self, keep_from: int) -> bool:
        """Drop the text before ``keep_from`` and append the next chunk; False at end of file."""
        data = self._file.read(self.chunk_bytes)
        if not data:
            self._eof = True
            return False
        self._base += keep_from
        self._text = self._text[keep_from:] + data.decode("latin-1")
        return True

    def _peek(self, pos: int) -> tuple[str, int]:
        """The next non-space character at or after ``pos`` and its index ('' at end of file)."""
        while True:
            match = _NOT_SPACE.search(self._text, pos)
            if match:
                return match.group(), match.start()
            if self._eof or not self._refill(len(self._text)):
                return "", len(self._text)
            pos = 0

    def _fail(self, pos: int, problem: str) -> EvalInputError:
        return EvalInputError(
            self.source, None, f"malformed JSON at byte {self._base + pos}: {problem}"
        )

    def _decode(self, pos: int) -> tuple[Any, int]:
        """Decode one value at ``pos``, reading more of the file while it is cut off."""
        while True:
            try:
                value, stop = _DECODER.raw_decode(self._text, pos)
            except json.JSONDecodeError as err:
                cut_off = err.pos >= len(self._text) - 1 or err.msg.startswith(
                    "Unterminated string"
                )
                if cut_off and not self._eof and self._refill(pos):
                    pos = 0
                    continue
                raise self._fail(err.pos, err.msg) from None
            if stop >= len(self._text) and not self._eof and self._refill(pos):
                pos = 0  # a number or literal may go on in the next chunk
                continue
            return value, stop

    # -- items --------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[int, Any]]:
        """Yield ``(byte offset, item)`` in file order."""
        try:
            self._file = open(self.path, "rb")
        except OSError as err:
            raise EvalInputError(self.path, None, f"cannot read file ({err.strerror})") from None
        with self._file:
            self._file.seek(self.begin)
            pos = 0
            if self.begin == 0:
                char, pos = self._peek(0)
                if char != "[":
                    raise self._fail(pos, "expected a JSON list ('[')")
                char, after = self._peek(pos + 1)
                if char == "]":
                    self._check_trailer(after + 1)
                    return
                pos = after
            while True:
                char, pos = self._peek(pos)
                if not char:
                    raise self._fail(pos, "unexpected end of file inside the list")
                offset = self._base + pos
                if self.end is not None and offset >= self.end:
                    self.stop_offset = offset
                    return
                value, pos = self._decode(pos)
                yield offset, value
                char, pos = self._peek(pos)
                if char == ",":
                    nxt, pos = self._peek(pos + 1)
                    if nxt == "]":
                        raise self._fail(pos, "trailing comma before ']'")
                elif char == "]":
                    self._check_trailer(pos + 1)
                    return
                elif not char:
                    raise self._fail(pos, "unexpected end of file inside the list (missing ']')")
                else:
                    raise self._fail(pos, f"expected ',' or ']' after a list item, found {char!r}")

    def _check_trailer(self, pos: int) -> None:
        char, pos = self._peek(pos)
        if char:
            raise self._fail(pos, "extra data after the end of the list")


def find_item_start(
    path: str,
    source: str,
    offset: int,
    looks_like_item: Callable[[Any], bool],
    window: int = 1 << 22,
) -> int | None:
    """Offset of the first ``{`` at or after ``offset`` that decodes to an item.

    A guess: it is only trusted when it equals the boundary reported by whoever read the bytes
    before ``offset`` from the start of the file, which makes a wrong guess harmless.
    """
    with open(path, "rb") as f:
        f.seek(offset)
        text = f.read(window).decode("latin-1")
    start = text.find("{")
    tries = 0
    while start >= 0 and tries < 256:
        tries += 1
        stream = JsonArrayStream(path, source, begin=offset + start, chunk_bytes=1 << 16)
        try:
            for _, value in stream:
                if looks_like_item(value):
                    return offset + start
                break
        except EvalInputError:
            pass
        start = text.find("{", start + 1)
    return None
