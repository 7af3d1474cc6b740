"""The jobs' metrics histories the hub holds: asked of the sources when someone wants one, kept
on a byte budget, let go when nobody has followed one for a while."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Mapping
from typing import Final

from sidecar.core.events import HistoryInterest, HistoryLines
from sidecar.core.history_budget import HistoryBudget
from sidecar.core.history_log import HistoryLog
from sidecar.core.subscription import Channel

LOAD_TIMEOUT: Final = 10.0
"""Seconds a reader of a whole history (a REST request, a finished job's stream) waits for it to
be read, at most; then it takes what was read (10,000 metrics lines load in about 0.3 s)."""


class HistoryStore:
    """The histories of the jobs in ``channels`` (each held in its channel while it is).

    Args:
        channels: the hub's jobs, read only.
        node: the hub's node name: its own jobs' histories are followed while a publisher is.
        max_entries: history entries kept per job (the oldest go first).
        budget: the histories held, on their byte budget, with their grace.
        clock: POSIX time, for the grace.
    """

    def __init__(
        self,
        channels: Mapping[str, Channel],
        *,
        node: str,
        max_entries: int,
        budget: HistoryBudget,
        clock: Callable[[], float],
    ) -> None:
        self._channels = channels
        self._node = node
        self.max_entries = max_entries
        self.budget = budget
        self._clock = clock
        self.interest = HistoryInterest()
        """Where sources learn whose history someone wants (histories nobody asks for cost
        nothing); they answer with ``HistoryLines`` events."""
        self._loaded: dict[str, asyncio.Event] = {}
        self._readers: collections.Counter[str] = collections.Counter()
        """REST requests reading a job's history now."""
        self.publishers = 0
        """Watches of every job's history (a cluster node's publisher)."""

    def use(self, job_id: str) -> HistoryLog | None:
        """A job's history as far as its source has sent it (asking for it, the first time, or
        the first time since it was released); None for an unknown job or one whose source has
        sent none yet. Each call is a use: a history is released only after the grace without
        one, and while nobody follows it."""
        channel = self._channels.get(job_id)
        if channel is None:
            return None
        self.budget.used(job_id, self._clock())
        if job_id not in self.interest.wanted:  # (a source may have given it up)
            self._loaded.setdefault(job_id, asyncio.Event())
            self.interest.want(job_id)
        return channel.history

    async def loaded(self, job_id: str, *, timeout: float) -> HistoryLog | None:
        """A job's history once its source has read all the file held, or after ``timeout``
        seconds as far as it got; None for an unknown job. Followed meanwhile."""
        self._readers[job_id] += 1
        try:
            self.use(job_id)
            loaded = self._loaded.get(job_id)
            if loaded is not None and not loaded.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(loaded.wait(), timeout)
            return self.use(job_id)
        finally:
            self._readers[job_id] -= 1
            if not self._readers[job_id]:
                del self._readers[job_id]

    def followed(self, job_id: str) -> bool:
        """Whether someone follows a job's history now: a client that asked for it, a REST
        request that reads it, or, on a cluster node, the publisher (every history of the
        node's own jobs goes to the bus)."""
        channel = self._channels.get(job_id)
        if channel is None:
            return False
        if job_id in self._readers or any(s.history for s in channel.subscribers):
            return True
        own = channel.published is None and channel.state.node == self._node
        return own and self.publishers > 0

    def extend(self, event: HistoryLines) -> bool:
        """Take lines from a source; whether the job's history changed (its followers are then
        to be woken). Histories over the budget that nobody follows are let go."""
        channel = self._channels.get(event.job_id)
        if channel is None or event.job_id not in self.interest.wanted:
            return False  # nobody wants it (any more: released, and its source told so)
        if event.loaded:
            self._loaded.setdefault(event.job_id, asyncio.Event()).set()
        if channel.history is None:
            channel.history = HistoryLog(max_entries=self.max_entries)
            self.budget.hold(event.job_id, channel.history)
        if event.reset:
            channel.history.reset(list(event.entries))
        elif event.entries:
            channel.history.extend(list(event.entries))
        else:
            return False
        self.budget.changed(event.job_id)
        for job_id in self.budget.over_budget(followed=self.followed):
            self._release(job_id)
        return True

    def release_idle(self) -> int:
        """Release the histories nobody has followed for the grace; returns how many. Their
        sources stop following them; the next want reads them again."""
        released = self.budget.due(self._clock(), followed=self.followed)
        for job_id in released:
            self._release(job_id)
        return len(released)

    def unfollowed(self, job_id: str) -> None:
        """A follower of the job's history left: its grace starts now."""
        self.budget.used(job_id, self._clock())

    def publisher_left(self) -> None:
        """The publisher followed every history of this node's jobs: their grace starts."""
        self.publishers -= 1
        for job_id in list(self.interest.wanted):
            self.budget.used(job_id, self._clock())

    def taken_back(self, channel: Channel) -> None:
        """The job's id went from another node's job to this node's own: the other's history
        goes, and this one's is asked for if a client follows it."""
        channel.history = None
        self.budget.forget(channel.job_id)
        self.interest.forget(channel.job_id)
        if any(subscription.history for subscription in channel.subscribers):
            self.use(channel.job_id)

    def forget(self, job_id: str) -> None:
        """The job is gone: wanting its history again starts over."""
        self.interest.forget(job_id)
        self._loaded.pop(job_id, None)
        self.budget.forget(job_id)

    def _release(self, job_id: str) -> None:
        """Let a job's history go (the budget has forgotten it already)."""
        channel = self._channels.get(job_id)
        if channel is not None:
            channel.history = None
        self._loaded.pop(job_id, None)
        self.interest.unwant(job_id)
