"""Writing progress.json and metrics.jsonl the way the sidecar likes them.

Atomic (temp file in the same directory, then ``os.replace``), throttled, strict JSON, and
never an exception into training: a failed write is logged once and training goes on.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from sidecar.core.contract import HISTORY_FILE, PROGRESS_FILE, is_terminal, strict_json

logger = logging.getLogger(__name__)


def _dumps(value: Any) -> str:
    return json.dumps(strict_json(value), allow_nan=False, default=str)


class ProgressWriter:
    """Writes one job's progress.json and appends to its metrics.jsonl.

    Args:
        job_dir: the job's directory; created if missing.
        min_interval: seconds between two writes of progress.json; states offered sooner are
            held and the latest is written with the next write that is due (or ``flush``).
            The first state and every terminal state are written at once, and fsynced.
        clock: a monotonic clock, for tests.
    """

    def __init__(
        self,
        job_dir: Path,
        *,
        min_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_dir = Path(job_dir)
        self.path = self.job_dir / PROGRESS_FILE
        self.history_path = self.job_dir / HISTORY_FILE
        self.min_interval = min_interval
        self._clock = clock
        self._last_write: float | None = None
        self._pending: dict[str, Any] | None = None
        self._failed = False
        self._history_file: TextIO | None = None
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
        return self._guard(lambda: self._replace(_dumps(state), durable=durable))

    def flush(self) -> bool:
        """Write the state held back by the throttle, if any."""
        if self._pending is None:
            return False
        return self.write(self._pending, force=True)

    def append_history(self, entry: dict[str, Any]) -> bool:
        """Append one event (a JSON object on one line) to metrics.jsonl."""

        def append() -> None:
            if self._history_file is None:
                self.job_dir.mkdir(parents=True, exist_ok=True)
                self._history_file = open(self.history_path, "a", encoding="utf-8")  # noqa: SIM115
            # One write() of a whole line, in append mode: a reader sees it whole or not at all.
            self._history_file.write(_dumps(entry) + "\n")
            self._history_file.flush()

        return self._guard(append)

    def close(self) -> None:
        """Close metrics.jsonl (a later ``append_history`` opens it again)."""
        if self._history_file is not None:
            self._history_file.close()
            self._history_file = None

    def _replace(self, text: str, *, durable: bool) -> None:
        self.job_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{PROGRESS_FILE}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
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
        self.writes += 1

    def _guard(self, action: Callable[[], None]) -> bool:
        try:
            action()
        except Exception as e:
            if not self._failed:
                self._failed = True
                logger.warning(
                    "cannot write progress to %s: %s; training goes on (said once)", self.job_dir, e
                )
            return False
        return True


def _fsync_dir(path: Path) -> None:
    # The rename is durable once the directory entry is: fsync the directory too.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
