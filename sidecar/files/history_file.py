"""A job's metrics history: the lines of metrics.jsonl, tailed as the trainer appends them."""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from sidecar.core.codec import decode_entry
from sidecar.core.contract import MAX_HISTORY_LINE
from sidecar.core.history_log import DEFAULT_MAX_ENTRIES, MAX_BYTES
from sidecar.files.beneath import open_beneath

logger = logging.getLogger(__name__)

SLICE_BYTES = MAX_HISTORY_LINE
"""What one ``HistoryFileReader.read`` reads at most. Parsing and encoding 32 KiB of the densest
lines (arrays of floats) again takes about 2 ms on the 2-core development machine, so that no
slice holds the event loop long (docs/benchmarks.md, history flood). A line must fit in one: a
longer one is dropped (metrics lines are 100 to 200 bytes; a log event with every metric of a
trainer, a few KiB)."""
SLICE_LINES = 128
"""What one read parses at most: a metrics line (100 to 200 bytes) costs about 12 µs, 128 of
them about 1.5 ms."""
SCAN_STEP_BYTES = 1 << 20
"""What one read scans at most, counting newlines back from the end to find where the lines worth
reading start: about 0.4 ms (10,000 metrics lines take 1 to 2 MiB)."""
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK  # a FIFO must not block the open


class HistoryRead(NamedTuple):
    """What one ``HistoryFileReader.read`` found."""

    entries: list[bytes]
    """New entries, as strict JSON."""
    reset: bool
    """They replace all earlier ones: the file was truncated, replaced or removed."""
    more: bool
    """More whole lines may wait after these: read again (soon, but not at once)."""


@dataclass(slots=True)
class _Scan:
    """A scan back from ``end`` for the start of the last lines, under way."""

    end: int
    floor: int  # it stops here
    position: int  # scanned down to here
    found: int = 0  # newlines seen
    earliest: int | None = None  # the first newline after ``position``


class HistoryFileReader:
    """Reads what was appended to one metrics.jsonl since the last read, a slice at a time.

    Only whole lines are taken: a partial last line waits for its newline. A file that shrinks
    or is replaced (another inode) is read again from its start, and ``read`` says so. When more
    waits than one slice, only the last ``max_entries`` lines (within ``MAX_BYTES`` of the end)
    are read: the history would drop what lies before them anyway, so it is skipped unparsed.
    The file is opened with ``open_beneath``: a symlink, as the file or as a directory on its
    way, is not followed.

    Args:
        root: the jobs root, which the file lies below.
        path: the file.
        job_id: for log lines.
        max_entries: the entries the history keeps.
    """

    def __init__(
        self, root: Path, path: Path, job_id: str, *, max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> None:
        self.root = root
        self.path = path
        self.job_id = job_id
        self.max_entries = max_entries
        self.offset = 0
        """Where the next line starts: what lies before it was read (or skipped)."""
        self._inode: int | None = None
        self._discarding = False  # inside a line too long to keep: dropped up to its newline
        self._scan: _Scan | None = None
        self._scanned = 0  # where the last scan began: what lies before it was counted
        self._warned: set[str] = set()

    def read(self, *, max_bytes: int = SLICE_BYTES, max_lines: int = SLICE_LINES) -> HistoryRead:
        """The entries of the next whole lines: at most ``max_lines`` of them, from at most
        ``max_bytes`` bytes of the file (a line longer than that is dropped)."""
        fd = self._open()
        if fd is None:
            gone = self._inode is not None
            self._start_over(None)
            return HistoryRead([], gone, False)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self._warn("type", "not a regular file")
                return HistoryRead([], False, False)
            reset = self._inode is not None and (
                st.st_ino != self._inode or st.st_size < self.offset
            )
            if reset or self._inode is None:
                self._start_over(st.st_ino)
            if self._scan is None and st.st_size - max(self.offset, self._scanned) > max_bytes:
                floor = max(self.offset, st.st_size - MAX_BYTES)
                self._scan = _Scan(st.st_size, floor, st.st_size)
            if self._scan is not None and not self._scan_back(fd):
                return HistoryRead([], reset, True)
            length = min(max_bytes, st.st_size - self.offset)
            data = os.pread(fd, length, self.offset) if length > 0 else b""
        except OSError as e:
            self._warn("read", f"cannot read: {os.strerror(e.errno or 0).lower()}")
            return HistoryRead([], False, False)
        finally:
            os.close(fd)
        full = len(data) == max_bytes
        start = 0
        if self._discarding:
            newline = data.find(b"\n")
            if newline < 0:
                self.offset += len(data)
                return HistoryRead([], reset, full)
            self._discarding, start = False, newline + 1
        lines = (data[start:] if start else data).split(b"\n", max_lines)
        more = len(lines) > max_lines or full
        lines.pop()  # the rest: a partial line, or lines for the next read
        if not lines and full and not start:
            self._warn("long", f"a line longer than {max_bytes} bytes; dropped")
            self._discarding = True
            start = len(data)
        self.offset += start + sum(map(len, lines)) + len(lines)
        return HistoryRead(self._parse(lines), reset, more)

    def end(self) -> int:
        """Where what was written so far ends: the file's size now (0 without a file)."""
        fd = self._open()
        if fd is None:
            return 0
        try:
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def _open(self) -> int | None:
        try:
            return open_beneath(self.root, self.path, _OPEN_FLAGS)
        except OSError as e:
            if e.errno == errno.ELOOP:
                self._warn("open", "a symlink; not followed")
            elif e.errno not in (errno.ENOENT, errno.ENOTDIR):
                # ENOTDIR: no job directory, or a symlink to one (not followed), is no file.
                self._warn("open", f"cannot open: {os.strerror(e.errno or 0).lower()}")
            return None

    def _start_over(self, inode: int | None) -> None:
        self._inode, self.offset, self._scanned = inode, 0, 0
        self._discarding, self._scan = False, None

    def _scan_back(self, fd: int) -> bool:
        """Go on with the scan for the start of the last ``max_entries`` lines, or of the lines
        that end within ``MAX_BYTES`` of the end if that is later: ``SCAN_STEP_BYTES`` at most,
        counting newlines without parsing. True once it is over, ``offset`` moved on."""
        scan = self._scan
        assert scan is not None
        wanted = self.max_entries + 1  # the newline that ends the line before the first kept
        budget = SCAN_STEP_BYTES
        while scan.position > scan.floor:
            if budget <= 0:
                return False
            length = min(SLICE_BYTES, budget, scan.position - scan.floor)
            chunk = os.pread(fd, length, scan.position - length)
            if len(chunk) < length:  # truncated meanwhile: the next read starts over
                self._scan = None
                return True
            scan.position -= length
            budget -= length
            count = chunk.count(b"\n")
            if scan.found + count >= wanted:
                index = length
                for _ in range(wanted - scan.found):
                    index = chunk.rfind(b"\n", 0, index)
                self._skip_to(scan.position + index + 1, scan)
                return True
            scan.found += count
            if count:
                scan.earliest = scan.position + chunk.find(b"\n")
        if scan.floor == self.offset:
            self._skip_to(self.offset, scan)  # every line from the offset on is wanted
        elif scan.earliest is not None:  # the line that starts before MAX_BYTES from the end
            self._skip_to(scan.earliest + 1, scan)
        else:  # no line starts within MAX_BYTES of the end: the one that does is dropped
            self._skip_to(scan.end, scan, discard=True)
        return True

    def _skip_to(self, start: int, scan: _Scan, *, discard: bool = False) -> None:
        self._scan, self._scanned = None, scan.end
        if start <= self.offset:
            return
        skipped, self.offset, self._discarding = start - self.offset, start, discard
        if skipped == start:
            logger.debug("job %s: %s: first %d bytes skipped", self.job_id, self.path, skipped)
        else:
            self._warn(
                "skip",
                f"{skipped} bytes appended at once skipped unread: only the last "
                f"{self.max_entries} lines (at most {MAX_BYTES} bytes) are kept",
            )

    def _parse(self, lines: list[bytes]) -> list[bytes]:
        entries = []
        for line in lines:
            if not line.strip():
                continue
            try:
                entries.append(decode_entry(line))
            except ValueError as e:
                self._warn("line", f"line skipped: {e}")
        return entries

    def _warn(self, kind: str, reason: str) -> None:
        """Log ``reason`` once per job and ``kind`` of trouble."""
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning("job %s: %s: %s (said once per job)", self.job_id, self.path, reason)
