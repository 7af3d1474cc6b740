"""A job's metrics history as the hub keeps it: entries, the oldest dropped past a cap. Pure."""

from __future__ import annotations

from collections import deque

DEFAULT_MAX_ENTRIES = 10_000
MAX_BYTES = 16 << 20
"""The most bytes of entries one job's history keeps (the oldest go first), and so the most of a
file's end worth reading when more lines wait than the history keeps."""
ENTRY_OVERHEAD = 48
"""Bytes an entry costs beyond its own: the bytes object's header and its slot in the deque
(measured with tracemalloc: about 41)."""


class HistoryLog:
    """The entries of one job, each kept as its strict-JSON bytes, the oldest dropped past
    ``max_entries`` entries or ``max_bytes`` bytes.

    ``total`` counts entries appended since the last reset (dropped ones included), and
    ``generation`` counts resets, so that a reader can ask for what it has not seen yet.
    """

    def __init__(
        self, *, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = MAX_BYTES
    ) -> None:
        self.entries: deque[bytes] = deque()
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.size = 0
        """The bytes of the entries kept."""
        self.total = 0
        self.generation = 0

    def extend(self, entries: list[bytes]) -> None:
        self.total += len(entries)
        for entry in entries[-self.max_entries :]:
            self.entries.append(entry)
            self.size += len(entry)
        while len(self.entries) > self.max_entries or self.size > self.max_bytes:
            self.size -= len(self.entries.popleft())

    def reset(self, entries: list[bytes]) -> None:
        """Start over (the file was truncated or replaced) with ``entries``."""
        self.entries.clear()
        self.size = 0
        self.total = 0
        self.generation += 1
        self.extend(entries)

    @property
    def footprint(self) -> int:
        """About what the entries kept take in memory: their bytes and their bookkeeping."""
        return self.size + len(self.entries) * ENTRY_OVERHEAD

    def trim(self, footprint: int) -> None:
        """Drop the oldest entries until the rest take ``footprint`` at most (``total`` and
        ``generation`` stay: a reader's place in the history still holds)."""
        while self.entries and self.footprint > footprint:
            self.size -= len(self.entries.popleft())

    def since(self, seen: int) -> list[bytes]:
        """The entries after the first ``seen`` of this generation (all that are kept, if fewer)."""
        unseen = self.total - seen
        if unseen <= 0:
            return []
        if unseen >= len(self.entries):
            return list(self.entries)
        return list(self.entries)[-unseen:]
