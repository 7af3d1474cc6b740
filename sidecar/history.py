"""A job's metrics history: the lines of metrics.jsonl, tailed as the trainer appends them."""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections import deque
from pathlib import Path

from sidecar.codec import decode_document, encode

logger = logging.getLogger(__name__)

DEFAULT_MAX_ENTRIES = 10_000
# A history file larger than this is read from its last bytes only, at the first look.
MAX_INITIAL_BYTES = 16 << 20
# A "line" this long without a newline is not one: dropped.
MAX_LINE_BYTES = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class HistoryLog:
    """The entries of one job, each kept as its strict-JSON bytes, the oldest dropped past a cap.

    ``total`` counts entries appended since the last reset (dropped ones included), and
    ``generation`` counts resets, so that a reader can ask for what it has not seen yet.
    """

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.entries: deque[bytes] = deque(maxlen=max_entries)
        self.total = 0
        self.generation = 0

    def extend(self, entries: list[bytes]) -> None:
        self.entries.extend(entries)
        self.total += len(entries)

    def reset(self, entries: list[bytes]) -> None:
        """Start over (the file was truncated or replaced) with ``entries``."""
        self.entries.clear()
        self.total = 0
        self.generation += 1
        self.extend(entries)

    def since(self, seen: int) -> list[bytes]:
        """The entries after the first ``seen`` of this generation (all that are kept, if fewer)."""
        unseen = self.total - seen
        if unseen <= 0:
            return []
        if unseen >= len(self.entries):
            return list(self.entries)
        return list(self.entries)[-unseen:]


class HistoryTail:
    """Reads what was appended to one metrics.jsonl since the last read.

    Only whole lines are taken: a partial last line waits for its newline. A file that shrinks
    or is replaced (another inode) is read again from its start, and ``read`` says so.

    Args:
        path: the file.
        job_id: for log lines.
    """

    def __init__(self, path: Path, job_id: str) -> None:
        self.path = path
        self.job_id = job_id
        self._inode: int | None = None
        self._offset = 0
        self._partial = b""
        self._warned = False

    def read(self) -> tuple[list[bytes], bool]:
        """New entries, and whether they replace all earlier ones."""
        try:
            fd = os.open(self.path, _OPEN_FLAGS)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                self._warn(f"cannot open: {os.strerror(e.errno or 0).lower()}")
            gone = self._inode is not None
            self._inode, self._offset, self._partial = None, 0, b""
            return [], gone
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self._warn("not a regular file")
                return [], False
            reset = self._inode is not None and (
                st.st_ino != self._inode or st.st_size < self._offset
            )
            if reset or self._inode is None:
                self._inode, self._offset, self._partial = st.st_ino, 0, b""
            start = self._offset
            skip_first = False
            if start == 0 and st.st_size > MAX_INITIAL_BYTES:
                start, skip_first = st.st_size - MAX_INITIAL_BYTES, True
            data = os.pread(fd, st.st_size - start, start) if st.st_size > start else b""
        finally:
            os.close(fd)
        self._offset = start + len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if skip_first and lines:
            lines.pop(0)  # cut in the middle by the size cap
        if len(self._partial) > MAX_LINE_BYTES:
            self._warn(f"a line longer than {MAX_LINE_BYTES} bytes; dropped")
            self._partial = b""
        return self._parse(lines), reset

    def _parse(self, lines: list[bytes]) -> list[bytes]:
        entries = []
        for line in lines:
            if not line.strip():
                continue
            try:
                value = decode_document(line)
            except ValueError as e:
                self._warn(f"line skipped: {e}")
                continue
            if not isinstance(value, dict):
                self._warn("line skipped: not a json object")
                continue
            entries.append(encode(value))
        return entries

    def _warn(self, reason: str) -> None:
        if not self._warned:
            self._warned = True
            logger.warning("job %s: %s: %s (said once per job)", self.job_id, self.path, reason)
