"""Other nodes' histories that someone here wants: read whole from Redis once, then followed in
their node's stream (what the stream brings while the list is read is held, then applied)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

import redis.asyncio as aioredis

from sidecar.bus import decoder, keys, wire
from sidecar.bus.link import FAILURES, stop_if_cancelled
from sidecar.bus.rate_log import Drops
from sidecar.core.backoff import Backoff
from sidecar.core.events import Event, HistoryLines
from sidecar.core.hub import JobHub

logger = logging.getLogger(__name__)


class HistoryFollower:
    """The histories of other nodes' jobs followed for ``hub``."""

    def __init__(
        self, redis: aioredis.Redis, hub: JobHub, sink: Callable[[Event], None], drops: Drops
    ) -> None:
        self.redis, self.hub, self._sink, self._drops = redis, hub, sink, drops
        # How far each is applied (None while it is read), and what came from the stream
        # meanwhile.
        self._marks: dict[str, wire.HistoryMark | None] = {}
        self._held: dict[str, list[wire.History]] = {}
        self.fetches: set[asyncio.Task[None]] = set()

    def wanted(self, job_id: str) -> None:
        """Someone here wants a job's history: if it is another node's, read it from Redis."""
        state = self.hub.get(job_id)
        if state is not None and state.node != self.hub.node and job_id not in self._marks:
            self.fetch(job_id)

    def unwanted(self, job_id: str) -> None:
        """Nobody here wants it any more (or the job went): its entries in the stream are
        ignored from now on (the next want reads it from Redis again)."""
        self._marks.pop(job_id, None)
        self._held.pop(job_id, None)

    def refetch(self) -> None:
        """Read every followed history again (the stream lost entries this reader missed)."""
        for job_id in list(self._marks):
            self.fetch(job_id)

    def fetch(self, job_id: str) -> None:
        """Read a job's whole history (again); what the stream brings meanwhile is held."""
        if job_id in self._marks and self._marks[job_id] is None:
            return  # a read is under way
        self._marks[job_id] = None
        task = asyncio.create_task(self._read(job_id), name=f"bus-history-{job_id}")
        self.fetches.add(task)
        task.add_done_callback(functools.partial(self._fetched, job_id))

    def _fetched(self, job_id: str, task: asyncio.Task[None]) -> None:
        self.fetches.discard(task)
        if task.cancelled() or (error := task.exception()) is None:
            return
        # The next want reads it again: a failed read must not leave it "under way" for ever.
        self.unwanted(job_id)
        self.hub.history_interest.forget(job_id)
        logger.error("bus: reading the history of job %s failed", job_id, exc_info=error)

    async def _read(self, job_id: str) -> None:
        backoff = Backoff()
        while (state := self.hub.get(job_id)) is not None and job_id in self._marks:
            stop_if_cancelled()  # redis-py may have swallowed a cancellation
            node = state.node
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.get(keys.history_mark_key(node, job_id))
                    pipe.lrange(keys.history_key(node, job_id), -self.hub.histories.max_entries, -1)
                    raw_mark, items = await pipe.execute(raise_on_error=False)
            except FAILURES as e:
                stop_if_cancelled()
                logger.debug("bus: history of job %s not read yet: %s", job_id, e)
                await asyncio.sleep(backoff.next())
                continue
            if job_id not in self._marks:
                return  # nobody wants it any more
            self._marks[job_id] = self._mark(node, job_id, raw_mark)
            if isinstance(items, Exception):
                self._drops(node, f"job {job_id}'s history list: {items}")
                items = []
            good, dropped = decoder.history_entries(items)
            if dropped:
                self._drops(node, f"job {job_id}'s history list", count=dropped)
            self._sink(HistoryLines(node, job_id, good, reset=True, loaded=True))
            for message in self._held.pop(job_id, []):
                self.take(message)
            return
        self.unwanted(job_id)  # the job went meanwhile

    def _mark(self, node: str, job_id: str, raw: object) -> wire.HistoryMark:
        if raw is None:
            return wire.HistoryMark("0", 0, 0)
        try:
            if not isinstance(raw, bytes):
                raise wire.BadMessage(str(raw))
            return decoder.decode_mark(raw)
        except wire.BadMessage as e:
            self._drops(node, f"job {job_id}'s history mark: {e}; its history starts over")
            return wire.HistoryMark("0", 0, 0)

    def take(self, message: wire.History) -> None:
        """History lines from a node's stream."""
        job_id = message.job_id
        if job_id not in self._marks:
            return  # nobody here wants it
        state = self.hub.get(job_id)
        if state is None or state.node != message.origin:
            return  # another node's job of that id: not its history
        mark = self._marks[job_id]
        if mark is None:
            self._held.setdefault(job_id, []).append(message)
            return
        new_mark = message.mark
        if not new_mark.same_history(mark):
            if message.reset and _later(new_mark, mark):
                self._marks[job_id] = new_mark
                self._sink(message.lines(message.entries, reset=True))
            elif _later(new_mark, mark):
                self.fetch(job_id)  # a reset (or a new process) went by unseen
            return
        new = new_mark.total - mark.total
        if new <= 0:
            return  # already had (the read above included it)
        if new > len(message.entries):
            self.fetch(job_id)  # entries went by unseen
            return
        self._marks[job_id] = new_mark
        entries = message.entries[-new:] if new < len(message.entries) else message.entries
        self._sink(message.lines(entries, reset=False))


def _later(mark: wire.HistoryMark, than: wire.HistoryMark) -> bool:
    """Whether ``mark`` counts a later history than ``than``: a later process of the owner
    (epochs begin with the time), or a later reset of the same one."""
    if mark.epoch != than.epoch:
        return mark.epoch > than.epoch
    return mark.generation > than.generation
