"""Writing progress.json and metrics.jsonl the way the sidecar likes them.

progress.json is replaced atomically (a temp file in the same directory, then ``os.replace``),
throttled, in strict JSON; metrics.jsonl gets one whole line per event and never ends in a cut
one. Nothing raises into training: a failed write is logged once per file and kind of failure
and training goes on; an interrupt (a signal's exception) that arrives mid-write waits until the
write is done.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import socket
import stat
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sidecar.core.contract import (
    HISTORY_FILE,
    PROGRESS_FILE,
    is_terminal,
    isoformat_utc,
    strict_json,
)
from trainer.stopping import uninterrupted

logger = logging.getLogger(__name__)


def _dumps(value: Any) -> str:
    return json.dumps(strict_json(value), allow_nan=False, default=str)


class ProgressWriter:
    """Writes one job's progress.json and appends to its metrics.jsonl.

    Args:
        job_dir: the job's directory; created if missing, and made again (with both files) if
            it is deleted during the run.
        min_interval: seconds between two writes of progress.json; states offered sooner are
            held and the latest is written with the next write that is due (or ``flush``).
            The first state and every terminal state are written at once, and fsynced.
        clock: a monotonic clock, for tests.
        retry_after: seconds before ``write_final`` tries a second time.
    """

    def __init__(
        self,
        job_dir: Path,
        *,
        min_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        retry_after: float = 0.2,
    ) -> None:
        self.job_dir = Path(job_dir)
        self.path = self.job_dir / PROGRESS_FILE
        self.history_path = self.job_dir / HISTORY_FILE
        self.min_interval = min_interval
        self.retry_after = retry_after
        self._clock = clock
        self._last_write: float | None = None
        self._pending: dict[str, Any] | None = None
        self._said: set[tuple[str, str]] = set()
        self._made = False  # the directory was there once: if it goes, it was deleted mid-run
        self._text: str | None = None  # progress.json as last written, to write it again
        self._history_fd: int | None = None
        self._history_used = False  # metrics.jsonl was opened once
        self._history_closer: weakref.finalize[[], ProgressWriter] | None = None
        self._line_start = 0  # where the line being appended starts
        self._cut = False  # a line may have been written in part from _line_start
        self.status: str | None = None
        """The status progress.json holds, as this writer last wrote it."""
        self.error: Exception | None = None
        """The latest failure."""
        self.writes = 0

    def due(self) -> bool:
        """Whether a state offered now would be written (so callers may skip building one)."""
        return self._last_write is None or self._clock() - self._last_write >= self.min_interval

    def write(self, state: dict[str, Any], *, force: bool = False) -> bool:
        """Offer a state; returns whether it was written now.

        Args:
            state: the whole progress document.
            force: write now whatever the throttle says.
        """
        terminal = is_terminal(state.get("status"))
        if not (force or terminal or self.due()):
            self._pending = state
            return False
        self._pending = None
        self._last_write = self._clock()
        durable = terminal or self.writes == 0
        return self._written(
            state, self._guard(PROGRESS_FILE, lambda: self._replace(_dumps(state), durable=durable))
        )

    def write_final(self, state: dict[str, Any]) -> bool:
        """Close metrics.jsonl, then write ``state`` (a terminal one) at once, fsynced.

        A failure is tried once more after ``retry_after`` seconds, written over the old file
        in place this time: that needs no new space, so a full disk does not stop it. Returns
        whether progress.json holds ``state``.
        """
        self.close()
        self._pending = None
        self._last_write = self._clock()
        if self._guard(PROGRESS_FILE, lambda: self._replace(_dumps(state), durable=True)):
            return self._written(state, True)
        time.sleep(self.retry_after)
        return self._written(
            state, self._guard(PROGRESS_FILE, lambda: self._overwrite(_dumps(state)))
        )

    def flush(self) -> bool:
        """Write the state held back by the throttle, if any."""
        if self._pending is None:
            return False
        return self.write(self._pending, force=True)

    def append_history(self, entry: dict[str, Any]) -> bool:
        """Append one event (a JSON object on one line) to metrics.jsonl: the whole line or,
        when the write fails (a full disk), nothing at all."""
        return self._guard(HISTORY_FILE, lambda: self._append((_dumps(entry) + "\n").encode()))

    def close(self) -> None:
        """Close metrics.jsonl (a later ``append_history`` opens it again). Never raises."""
        self._guard(HISTORY_FILE, self._close_history)

    # --- progress.json -------------------------------------------------------------------

    def _replace(self, text: str, *, durable: bool) -> None:
        tmp = self.path.with_name(f".{PROGRESS_FILE}.{os.getpid()}.tmp")
        # A new file of our own, whatever was at that name (a leftover, a link, a FIFO).
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileExistsError:
            tmp.unlink()
            fd = os.open(tmp, flags, 0o644)
        except FileNotFoundError:
            self._recreate(progress=False)
            fd = os.open(tmp, flags, 0o644)
        self._made = True
        try:
            with open(fd, "w", encoding="utf-8") as f:
                f.write(text)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if durable:
            _fsync_dir(self.job_dir)
        self._text = text
        self.writes += 1

    def _overwrite(self, text: str) -> None:
        """Write ``text`` over progress.json in place, in the old file's own space, padded with
        spaces (JSON allows them) to the old length so that no tail of the old text is left."""
        flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # no O_CREAT: space
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:  # no old file to go over: a new one, as the first time
            self._replace(text, durable=True)
            return
        try:
            st = os.fstat(fd)
            _own_file(st, self.path)
            data = text.encode()
            if len(data) > st.st_blocks * 512:
                raise OSError(errno.ENOSPC, "no room for the final state in progress.json")
            data += b" " * (st.st_size - len(data))
            if os.pwrite(fd, data, 0) != len(data):
                raise OSError(errno.ENOSPC, "progress.json written in part")
            os.fsync(fd)
        finally:
            os.close(fd)
        self._text = text
        self.writes += 1

    def _written(self, state: dict[str, Any], ok: bool) -> bool:
        if ok:
            self.status = state.get("status")
        return ok

    # --- metrics.jsonl -------------------------------------------------------------------

    def _append(self, line: bytes) -> None:
        if self._history_fd is None:
            self._open_history()
        assert self._history_fd is not None
        st = os.fstat(self._history_fd)
        if st.st_nlink == 0:  # deleted, or its directory was
            self._recreate(progress=True)
            assert self._history_fd is not None
            st = os.fstat(self._history_fd)
        fd = self._history_fd
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

    def _open_history(self) -> None:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.history_path, flags, 0o644)
        except FileNotFoundError:
            self._recreate(progress=True)
            fd = os.open(self.history_path, flags, 0o644)
        st = os.fstat(fd)
        try:
            _own_file(st, self.history_path)
        except OSError:
            os.close(fd)
            raise
        self._made = self._history_used = True
        self._history_fd, self._cut = fd, False
        self._history_closer = weakref.finalize(self, functools.partial(os.close, fd))
        size = st.st_size
        whole = _whole_lines_end(fd, size)
        if whole < size:  # a cut line from an earlier run
            os.ftruncate(fd, whole)
            logger.warning(
                "%s ended in a cut line: cut back to its last whole line", self.history_path
            )

    def _close_history(self) -> None:
        fd, self._history_fd = self._history_fd, None
        if fd is not None:
            if self._history_closer is not None:
                self._history_closer.detach()
            os.close(fd)

    # --- both ----------------------------------------------------------------------------

    def _recreate(self, *, progress: bool) -> None:
        """Make the job directory. When it was there before, it (or metrics.jsonl) was deleted
        during the run: say so once, open metrics.jsonl again and, with ``progress``, write the
        last progress.json again too, so that both files are back."""
        try:
            self.job_dir.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise NotADirectoryError(
                errno.ENOTDIR, "the job directory is not a directory", str(self.job_dir)
            ) from None
        if not self._made:
            return
        if ("directory", "deleted") not in self._said:
            self._said.add(("directory", "deleted"))
            logger.warning(
                "%s (or a file in it) was deleted during the run: writing progress.json and "
                "metrics.jsonl there again; the history before this point is gone (said once)",
                self.job_dir,
            )
        if self._history_fd is not None:
            self._close_history()
            self._open_history()
        elif self._history_used:  # closed (the final write): an empty one, for both files
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            os.close(os.open(self.history_path, flags, 0o644))
        if progress and self._text is not None and not self.path.exists():
            self._replace(self._text, durable=False)

    def _guard(self, file: str, action: Callable[[], None]) -> bool:
        def attempt() -> bool:
            try:
                action()
            except Exception as e:
                self.error = e
                kind = (file, _kind(e))
                if kind not in self._said:
                    self._said.add(kind)
                    logger.warning(
                        "cannot write %s: %s; training goes on (said once)",
                        self.job_dir / file,
                        e,
                    )
                return False
            return True

        return uninterrupted(attempt)


def progress_document(job_id: str, status: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A whole progress.json: the job, its status and ``fields``, then the writing process and
    the time."""
    return {
        "job_id": job_id,
        "status": status,
        **fields,
        "pid": os.getpid(),
        "hostname": _hostname(),
        "timestamp": isoformat_utc(time.time()),
    }


_hostname = functools.cache(socket.gethostname)


def _own_file(st: os.stat_result, path: Path) -> None:
    """Refuse what is not a plain file of the job's own: writing it in place (or cutting it
    back) would change something else too."""
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, f"{path} is not a regular file")
    if st.st_nlink > 1:
        raise OSError(errno.EMLINK, f"{path} has other hard links")


def _kind(error: Exception) -> str:
    if isinstance(error, OSError) and error.errno is not None:
        return errno.errorcode.get(error.errno, str(error.errno))
    return type(error).__name__


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


def _fsync_dir(path: Path) -> None:
    # The rename is durable once the directory entry is: fsync the directory too.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
