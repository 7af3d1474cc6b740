"""``JsonlAppender``: whole lines appended to a file (metrics.jsonl), never a cut one.

Each line goes in one ``write`` on a descriptor opened with ``O_APPEND``. When a write fails in
part (a full disk) or is interrupted, the file is cut back to where the line began; a cut line
left by something no process can see (SIGKILL, a power cut) is cut back when the file is next
opened.
"""

from __future__ import annotations

import functools
import logging
import os
import weakref
from collections.abc import Callable
from pathlib import Path

from trainer.in_place import check_own_file

logger = logging.getLogger(__name__)


class JsonlAppender:
    """Appends whole lines to one file, kept open between appends.

    Args:
        path: the file; created if missing.
        missing: called when the file or its directory is gone (deleted during the run), to
            make the directory again; the file is then opened anew.
    """

    def __init__(self, path: Path, *, missing: Callable[[], None]) -> None:
        self.path = path
        self._missing = missing
        self._fd: int | None = None
        self._closer: weakref.finalize[[], JsonlAppender] | None = None
        self._line_start = 0  # where the line being appended starts
        self._cut = False  # a line may have been written in part from _line_start
        self.used = False
        """Whether the file was opened once (so a deletion is a deletion, not a first time)."""

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def append(self, line: bytes) -> None:
        """Append ``line`` (ending in a newline), whole or not at all; raises what the file
        system raises."""
        if self._fd is None:
            self._open()
        assert self._fd is not None
        st = os.fstat(self._fd)
        if st.st_nlink == 0:  # deleted, or its directory was
            self.close()
            self._missing()
            self._open()
            assert self._fd is not None
            st = os.fstat(self._fd)
        fd = self._fd
        if self._cut:  # an attempt that failed (or was interrupted) left part of a line
            os.ftruncate(fd, min(st.st_size, self._line_start))
        else:
            self._line_start = st.st_size
        self._cut = True
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.ftruncate(fd, self._line_start)
            self._cut = False
            raise
        self._cut = False

    def reopen(self) -> None:
        """Open the file again if it is open (its directory was made anew)."""
        if self._fd is not None:
            self.close()
            self._open()

    def close(self) -> None:
        """Close the file (the next ``append`` opens it again)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            if self._closer is not None:
                self._closer.detach()
            os.close(fd)

    def _open(self) -> None:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            self._missing()
            fd = os.open(self.path, flags, 0o644)
        st = os.fstat(fd)
        try:
            check_own_file(st, self.path)
        except OSError:
            os.close(fd)
            raise
        self.used = True
        self._fd, self._cut = fd, False
        self._closer = weakref.finalize(self, functools.partial(os.close, fd))
        size = st.st_size
        whole = _whole_lines_end(fd, size)
        if whole < size:  # a cut line from an earlier run
            os.ftruncate(fd, whole)
            logger.warning("%s ended in a cut line: cut back to its last whole line", self.path)


def _whole_lines_end(fd: int, size: int, chunk: int = 65536) -> int:
    """Where the last whole line of the file ends (0 when it has none)."""
    end = size
    while end > 0:
        start = max(0, end - chunk)
        data = os.pread(fd, end - start, start)
        newline = data.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0
