"""A job's history as a file to download: CSV (RFC 4180) or JSON Lines. Pure.

Both are made an entry at a time, as pieces of bytes (some empty), so that whoever sends them
can pause between any two: a history of 100,000 entries must not hold the event loop up.

The CSV is for spreadsheets, and its cells come from any JSON a trainer (or anyone who can write
its metrics file) wrote, so it is made safe to open (docs/protocol.md, "History downloads"):

- the columns are ``step``, then every key of the entries in order of first appearance, at most
  ``MAX_COLUMNS`` of them (the keys past that are left out: the JSON Lines file has them all);
- a number is written as JSON writes it, a string as it is, ``true``/``false``, null or missing
  as an empty cell, an object or array as compact JSON;
- a string (a header's key too) that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
  return is prefixed with ``'``, so that a spreadsheet shows it rather than running it as a
  formula (OWASP, "CSV Injection"); numbers stay numbers;
- quoting is the csv module's: a cell with a comma, a quote or a line break is quoted, its
  quotes doubled; rows end with CRLF.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from typing import Final

from sidecar.core.codec import JSONObject, JSONValue, encode

MAX_COLUMNS: Final = 1_000
"""The most columns a CSV has, ``step`` included; the keys past them are left out."""
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
"""What a string cell may not start with: a spreadsheet would read it as a formula."""
STEP: Final = "step"
_decode: Final = json.JSONDecoder().decode


def csv_text(text: str) -> str:
    """A string as a cell: prefixed with ``'`` if a spreadsheet would take it for a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_cell(value: JSONValue) -> str:
    """One value of an entry as a CSV cell (null: an empty cell)."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    kind = type(value)
    if kind is str:
        return csv_text(value)
    if kind is int or kind is float:
        # As JSON writes it (json's own float.__repr__; only finite ones passed the boundary),
        # a minus sign included: a number is no formula.
        return repr(value)
    # An object or an array as compact JSON: it starts with a brace or a bracket.
    return encode(value).decode()


class CsvColumns:
    """The columns of a history's CSV: ``step``, then every key of the entries seen in order of
    first appearance, ``max_columns`` at most.

    Args:
        max_columns: the most columns (``step`` included); later keys are left out.
    """

    def __init__(self, *, max_columns: int = MAX_COLUMNS) -> None:
        self.max_columns = max_columns
        self.index: dict[str, int] = {STEP: 0}
        """Each column's key and its place."""
        self.left_out = False
        """Whether some key was left out (past ``max_columns``)."""

    def see(self, entry: JSONObject) -> None:
        """Take the keys of one more entry."""
        if self.left_out:
            return  # full, and it is known that more keys are left out: nothing left to learn
        index = self.index
        for key in entry:
            if key not in index:
                if len(index) < self.max_columns:
                    index[key] = len(index)
                else:
                    self.left_out = True
                    return


class _Rows:
    """CSV rows as bytes, one at a time (the csv module writes them, CRLF after each)."""

    def __init__(self) -> None:
        self._written: list[str] = []
        self.write = self._written.append  # the csv module writes each row with one call
        self._writer = csv.writer(self, lineterminator="\r\n")

    def row(self, cells: list[str]) -> bytes:
        self._writer.writerow(cells)
        return self._written.pop().encode()


def csv_pieces(entries: Sequence[bytes], *, max_columns: int = MAX_COLUMNS) -> Iterator[bytes]:
    """The CSV of a history, in pieces: an empty one after each entry looked at for its keys,
    then the header row, then one row per entry.

    Args:
        entries: the history's entries, each a JSON object as ``encode`` wrote it (they passed
            the boundary: ``decode_entry``). Each is decoded twice (its keys, then its row)
            rather than held decoded: bytes take a fraction of the memory.
        max_columns: the most columns (``step`` included); later keys are left out.
    """
    columns = CsvColumns(max_columns=max_columns)
    for entry in entries:
        columns.see(_decode(entry.decode()))
        yield b""
    rows = _Rows()
    index = columns.index
    yield rows.row([csv_text(key) for key in index])
    blank = [""] * len(index)
    for entry in entries:
        cells = blank.copy()
        for key, value in _decode(entry.decode()).items():
            at = index.get(key)
            if at is not None:
                cells[at] = csv_cell(value)
        yield rows.row(cells)


def jsonl_pieces(entries: Sequence[bytes]) -> Iterator[bytes]:
    """The JSON Lines file of a history: each entry as it is kept (compact JSON, UTF-8, no LF
    inside: JSON escapes it in strings), then an LF."""
    for entry in entries:
        yield entry + b"\n"
