"""The histories held in memory, on a budget: released when nobody follows them, bounded in
bytes in all jobs together. Pure.

A job's history is held once someone wants it (a client with ``?history=1``, a REST request, a
cluster node's publisher for the node's own jobs). Each use marks it; once nobody follows it, it
is released ``grace`` seconds after its last use (its source stops following the file; the next
want reads it again). Past ``total_bytes`` in all, the histories nobody follows go first, the
least recently used first, then the largest of the followed ones lose their oldest entries, down
to seven eighths of the budget (so that the next trim is a while away).

Whether a history is followed is the holder's to say (``followed``): this module keeps the
histories that may not be, by their last use, and asks before it lets one go.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

from sidecar.core.history_log import HistoryLog

HISTORY_BYTES = 128 << 20
"""Bytes of the histories held in all jobs together: 70 histories of 10,000 lines of 150
bytes, the most one job keeps by default."""
HISTORY_GRACE = 10.0
"""Seconds a history nobody follows is still held after its last use: a dashboard that polls
it, or a client that reconnects, finds it without a new read."""

Followed = Callable[[str], bool]
"""Whether someone follows a job's history now."""


class HistoryBudget:
    """Which jobs' histories are held, what they weigh in all, and which to release.

    Args:
        total_bytes: what all the histories held may weigh together (``HistoryLog.footprint``).
        grace: seconds a history nobody follows is held after its last use.
    """

    def __init__(self, *, total_bytes: int = HISTORY_BYTES, grace: float = HISTORY_GRACE) -> None:
        self.total_bytes = total_bytes
        self.grace = grace
        self.size = 0
        """What the histories held weigh in all."""
        self.released = 0
        """Histories released so far (unfollowed past the grace, or over the budget)."""
        self._logs: dict[str, HistoryLog] = {}
        self._weights: dict[str, int] = {}
        # Jobs whose history may have nobody following it, by when it was last used, the least
        # recently used first.
        self._idle: collections.OrderedDict[str, float] = collections.OrderedDict()

    def __len__(self) -> int:
        """Histories held."""
        return len(self._logs)

    def used(self, job_id: str, now: float) -> None:
        """A job's history was wanted or used now (its grace starts over)."""
        self._idle[job_id] = now
        self._idle.move_to_end(job_id)

    def hold(self, job_id: str, log: HistoryLog) -> None:
        """A job's history is held now (count it)."""
        self._logs[job_id] = log
        self.changed(job_id)

    def changed(self, job_id: str) -> None:
        """A job's history grew or started over: weigh it again."""
        log = self._logs.get(job_id)
        if log is not None:
            weight = log.footprint
            self.size += weight - self._weights.get(job_id, 0)
            self._weights[job_id] = weight

    def forget(self, job_id: str) -> None:
        """A job's history is no longer held (released, or the job is gone)."""
        self._idle.pop(job_id, None)
        self._logs.pop(job_id, None)
        self.size -= self._weights.pop(job_id, 0)

    def due(self, now: float, *, followed: Followed) -> list[str]:
        """The jobs whose history nobody has followed since ``grace`` seconds: they are
        forgotten here, and the holder releases them."""
        released = []
        while self._idle:
            job_id, last_used = next(iter(self._idle.items()))
            if last_used + self.grace > now:
                break
            del self._idle[job_id]
            if not followed(job_id):  # followed: its next use puts it back
                released.append(job_id)
                self._release(job_id)
        return released

    def over_budget(self, *, followed: Followed) -> list[str]:
        """Past the budget, the jobs whose history to release (those nobody follows, the least
        recently used first: they are forgotten here, and the holder releases them); if that is
        not enough, the largest followed histories lose their oldest entries."""
        released: list[str] = []
        if self.size <= self.total_bytes:
            return released
        for job_id in list(self._idle):
            if self.size <= self.total_bytes:
                break
            if job_id not in self._logs:
                continue  # wanted, nothing loaded yet: it weighs nothing
            if followed(job_id):
                del self._idle[job_id]
            else:
                released.append(job_id)
                self._release(job_id)
        if self.size > self.total_bytes:
            self._trim(self.total_bytes - self.total_bytes // 8)
        return released

    def _release(self, job_id: str) -> None:
        if job_id in self._logs:
            self.released += 1
        self.forget(job_id)

    def _trim(self, target: int) -> None:
        """Trim the heaviest histories to one level, so that all weigh ``target`` at most."""
        weights = sorted(((w, j) for j, w in self._weights.items()), reverse=True)
        excess = self.size - target
        total = 0
        for count, (weight, _job_id) in enumerate(weights, 1):
            total += weight
            below = weights[count][0] if count < len(weights) else 0
            if total - count * below >= excess:
                level = max(0, (total - excess) // count)
                for _weight, job_id in weights[:count]:
                    self._logs[job_id].trim(level)
                    self.changed(job_id)
                return
