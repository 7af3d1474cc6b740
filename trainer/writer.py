"""``ProgressWriter``: one job's progress.json and metrics.jsonl, the way the sidecar likes them.

progress.json is replaced atomically (``trainer.atomic``), throttled (``trainer.throttle``), in
strict JSON; a final state that cannot be written so is written in place (``trainer.in_place``).
metrics.jsonl gets one whole line per event and never ends in a cut one (``trainer.jsonl``).
Nothing raises into training: a failed write is logged once per file and kind of failure and
training goes on; an interrupt (a signal's exception) that arrives mid-write waits until the
write is done.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import socket
import time
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
from trainer.atomic import replace_atomically
from trainer.in_place import overwrite_in_place
from trainer.jsonl import JsonlAppender
from trainer.stopping import uninterrupted
from trainer.throttle import Throttle

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
        self.retry_after = retry_after
        self.throttle: Throttle[dict[str, Any]] = Throttle(min_interval, clock=clock)
        self.history = JsonlAppender(
            self.history_path, missing=lambda: self._recreate(progress=True)
        )
        self._said: set[tuple[str, str]] = set()
        self._text: str | None = None  # progress.json as last written, to write it again
        self.status: str | None = None
        """The status progress.json holds, as this writer last wrote it."""
        self.error: Exception | None = None
        """The latest failure."""
        self.writes = 0

    @property
    def min_interval(self) -> float:
        return self.throttle.min_interval

    def due(self) -> bool:
        """Whether a state offered now would be written (so callers may skip building one)."""
        return self.throttle.due()

    def write(self, state: dict[str, Any], *, force: bool = False) -> bool:
        """Offer a state; returns whether it was written now.

        Args:
            state: the whole progress document.
            force: write now whatever the throttle says.
        """
        terminal = is_terminal(state.get("status"))
        if not self.throttle.offer(state, now=force or terminal):
            return False
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
        self.throttle.offer(state, now=True)
        if self._guard(PROGRESS_FILE, lambda: self._replace(_dumps(state), durable=True)):
            return self._written(state, True)
        time.sleep(self.retry_after)
        return self._written(
            state, self._guard(PROGRESS_FILE, lambda: self._overwrite(_dumps(state)))
        )

    def flush(self) -> bool:
        """Write the state held back by the throttle, if any."""
        held = self.throttle.held
        if held is None:
            return False
        return self.write(held, force=True)

    def append_history(self, entry: dict[str, Any]) -> bool:
        """Append one event (a JSON object on one line) to metrics.jsonl: the whole line or,
        when the write fails (a full disk), nothing at all."""
        line = (_dumps(entry) + "\n").encode()
        return self._guard(HISTORY_FILE, lambda: self.history.append(line))

    def close(self) -> None:
        """Close metrics.jsonl (a later ``append_history`` opens it again). Never raises."""
        self._guard(HISTORY_FILE, self.history.close)

    def _replace(self, text: str, *, durable: bool) -> None:
        replace_atomically(
            self.path, text, durable=durable, make_dir=lambda: self._recreate(progress=False)
        )
        self._text = text
        self.writes += 1

    def _overwrite(self, text: str) -> None:
        try:
            overwrite_in_place(self.path, text)
        except FileNotFoundError:  # no old file to go over: a new one, as the first time
            self._replace(text, durable=True)
            return
        self._text = text
        self.writes += 1

    def _written(self, state: dict[str, Any], ok: bool) -> bool:
        if ok:
            self.status = state.get("status")
        return ok

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
        if not (self.writes or self.history.used):  # the first time: nothing was lost
            return
        if ("directory", "deleted") not in self._said:
            self._said.add(("directory", "deleted"))
            logger.warning(
                "%s (or a file in it) was deleted during the run: writing progress.json and "
                "metrics.jsonl there again; the history before this point is gone (said once)",
                self.job_dir,
            )
        if self.history.is_open:
            self.history.reopen()
        elif self.history.used:  # closed (the final write): an empty one, for both files
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


def _kind(error: Exception) -> str:
    if isinstance(error, OSError) and error.errno is not None:
        return errno.errorcode.get(error.errno, str(error.errno))
    return type(error).__name__
