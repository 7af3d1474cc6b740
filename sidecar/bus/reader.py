"""Every other node's jobs, from Redis into the hub.

At start (and whenever the stream lost entries this reader had not read: Redis restarted, or
trimmed past it), the current state of every job is read from its key, then the stream is
followed from where it stood before that read: nothing falls in between, and what is read twice
is an older or the same version, which the hub ignores. A job's history is read from its list
once someone here wants it, then followed in the stream. A node heard from by nothing for
``node_timeout`` seconds is lost, while Redis answers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from sidecar.bus import wire
from sidecar.bus.defaults import HEARTBEAT_INTERVAL
from sidecar.bus.link import FAILURES, READING, Link
from sidecar.core.backoff import Backoff
from sidecar.core.events import (
    Event,
    GuardedSink,
    HistoryLines,
    JobGone,
    JobPublished,
    NodeBack,
    NodeLost,
)
from sidecar.core.hub import JobHub

logger = logging.getLogger(__name__)

RESTARTED: Final = "restarted"
TRIMMED: Final = "trimmed"
READ_BLOCK_MS: Final = 1000
READ_COUNT: Final = 1000
MGET_BATCH: Final = 500
DROP_LOG_INTERVAL: Final = 10.0
"""Seconds between two log lines about entries dropped as not this protocol's."""
ANNOUNCE_GRACE: Final = 4 * HEARTBEAT_INTERVAL
"""Seconds a node that has jobs in Redis but no announcement there has to announce itself."""


class Reader:
    """Reads the cluster's jobs into ``hub``, except its own node's."""

    def __init__(
        self, redis: aioredis.Redis, link: Link, hub: JobHub, *, node_timeout: float
    ) -> None:
        self.redis = redis
        self.link = link
        self.hub = hub
        self.node = hub.node
        self.node_timeout = node_timeout
        self.heard: dict[str, float] = {}
        """Each known node and when it was last heard from (monotonic)."""
        # Histories of other nodes' jobs that someone here wants: how far each is applied
        # (None while it is read), and what came from the stream meanwhile.
        self._marks: dict[str, wire.HistoryMark | None] = {}
        self._held: dict[str, list[wire.History]] = {}
        self.fetches: set[asyncio.Task[None]] = set()
        self._run_id: str | None = None
        self.sink = GuardedSink(hub.apply, source="bus")
        self.dropped = 0
        """Entries dropped as not this protocol's (the whole message, or a history entry)."""
        self._drops_said = -math.inf  # when the last line about drops was logged

    def forgive_silence(self) -> None:
        """Redis answers again: silence while it did not is not the nodes' fault."""
        now = time.monotonic()
        self.heard = dict.fromkeys(self.heard, now)

    async def run(self) -> None:
        """Read until cancelled."""
        backoff = Backoff()
        last: bytes | None = None
        while True:
            try:
                behind = RESTARTED if last is None else await self._behind(last)
                if behind is not None:
                    last = await self._bootstrap(forget_missing=behind == TRIMMED)
                assert last is not None
                self.link.answered(READING)
                self.link.ready.set()
                backoff.reset()
                while True:
                    reply: Any = await self.redis.xread(
                        {wire.CHANGES: last}, count=READ_COUNT, block=READ_BLOCK_MS
                    )
                    self.link.answered(READING)
                    for _stream, entries in reply or ():
                        for entry_id, fields in entries:
                            last = entry_id
                            self._receive(fields.get(wire.FIELD))
            except FAILURES as e:
                await self.link.failed(READING, e)
                await asyncio.sleep(backoff.next())

    async def _behind(self, last: bytes) -> str | None:
        """Whether the stream lost entries this reader has not read: Redis ``RESTARTED``
        (another run of the server: it is empty, or was), or the stream ``TRIMMED`` past it.
        Then everything is read again."""
        if await self._server_run() != self._run_id:
            return RESTARTED
        try:
            info = await self.redis.xinfo_stream(wire.CHANGES)
        except ResponseError:
            return TRIMMED  # the same Redis, but no stream: someone deleted it
        first = info.get("first-entry")
        if first is not None and wire.parse_entry_id(first[0]) > wire.parse_entry_id(last):
            return TRIMMED
        return None

    async def _server_run(self) -> str | None:
        """Which run of the Redis server this is (it changes when Redis restarts)."""
        info: dict[str, Any] = await self.redis.info("server")
        run_id = info.get("run_id")
        return str(run_id) if run_id is not None else None

    async def _bootstrap(self, *, forget_missing: bool = False) -> bytes:
        """Read the current state of every job of the cluster; returns the stream position
        from which to follow. Entries written meanwhile come again from the stream; older
        versions than the hub has are ignored there.

        Args:
            forget_missing: remove the other nodes' jobs that Redis no longer has (their end
                went by in the part of the stream this reader missed). Not after a restart:
                the nodes have not told the new Redis everything yet.
        """
        self._run_id = await self._server_run()
        try:
            info = await self.redis.xinfo_stream(wire.CHANGES)
            last: bytes = info["last-generated-id"]
        except ResponseError:
            last = b"0-0"
        # The jobs before the announcements: a node that starts between the two reads is then
        # alive in what is read, never a node with jobs and no announcement.
        keys = [k async for k in self._scan(wire.JOB_PATTERN)]
        alive = {node async for k in self._scan(wire.NODE_PATTERN) if (node := wire.node_of_key(k))}
        nodes: set[str] = set()
        found: set[str] = set()
        for start in range(0, len(keys), MGET_BATCH):
            values: list[Any] = await self.redis.mget(keys[start : start + MGET_BATCH])
            for data in values:
                message = self._decode(data)
                if isinstance(message, JobPublished) and message.origin != self.node:
                    nodes.add(message.origin)
                    found.add(message.job_id)
                    self._apply(message)
        if forget_missing:
            for state in list(self.hub.states()):
                if state.node != self.node and state.job_id not in found:
                    self._apply(JobGone(state.node, state.job_id))
        now = time.monotonic()
        for node in (nodes | alive) - {self.node}:
            # A node whose announcement is not there is given the time of two more (after a
            # restart of Redis, a node may publish before it announces itself again).
            silent = 0.0 if node in alive else max(0.0, self.node_timeout - ANNOUNCE_GRACE)
            self.heard[node] = max(self.heard.get(node, 0.0), now - silent)
        for job_id in list(self._marks):
            self._fetch_history(job_id)
        logger.info("bus: read %d jobs of %d other nodes", len(found), len(nodes))
        return last

    async def _scan(self, pattern: str) -> AsyncIterator[bytes]:
        async for key in self.redis.scan_iter(match=pattern, count=1000):
            yield key

    def _decode(self, data: bytes | None) -> wire.Message | None:
        if data is None:
            return None
        try:
            return wire.decode(data)
        except wire.BadMessage as e:
            self.dropped += 1
            now = time.monotonic()
            if now - self._drops_said >= DROP_LOG_INTERVAL:
                # One line a while: whoever writes bad entries must not fill the log.
                logger.warning(
                    "bus: ignored a message that is not this protocol's: %s (%d dropped in all)",
                    e,
                    self.dropped,
                )
                self._drops_said = now
            return None

    def _receive(self, data: bytes | None) -> None:
        message = self._decode(data)
        if message is None or message.origin == self.node:
            return
        if not isinstance(message, wire.Leave):
            self.heard[message.origin] = time.monotonic()
        if message.origin in self.hub.lost_nodes and not isinstance(message, wire.Leave):
            logger.info("node %s is back", message.origin)
            self._apply(NodeBack(message.origin))
        if isinstance(message, wire.Leave):
            logger.info("node %s: its sidecar stopped", message.origin)
        elif isinstance(message, JobGone):
            self._marks.pop(message.job_id, None)
            self._held.pop(message.job_id, None)
            self._apply(message)
        elif isinstance(message, JobPublished):
            self._apply(message)
        elif isinstance(message, wire.History):
            self._take_history(message)

    def _apply(self, event: Event) -> None:
        """Hand an event to the hub; one it cannot take is logged and counted, not fatal."""
        self.sink(event)

    async def watch_nodes(self) -> None:
        """Tell the hub of each node silent for the node timeout, until cancelled."""
        while True:
            await asyncio.sleep(min(0.25, self.node_timeout / 4))
            if not self.link.reading:
                continue
            now = time.monotonic()
            for node, at in list(self.heard.items()):
                if now - at >= self.node_timeout and node not in self.hub.lost_nodes:
                    self._lose(node, f"not heard from for {self.node_timeout:g} s")
                if node in self.hub.lost_nodes and node not in self.hub.stranded_nodes():
                    del self.heard[node]  # nothing of it runs any more: forgotten

    def _lose(self, node: str, why: str) -> None:
        self._apply(NodeLost(node))
        if node not in self.hub.stranded_nodes():
            logger.info("node %s is gone (%s), with no job running", node, why)
        else:
            logger.warning("node %s lost: %s; its running jobs are shown stalled", node, why)

    def history_wanted(self, job_id: str) -> None:
        """Someone here wants a job's history: if it is another node's, read it from Redis."""
        state = self.hub.get(job_id)
        if state is not None and state.node != self.node and job_id not in self._marks:
            self._fetch_history(job_id)

    def history_unwanted(self, job_id: str) -> None:
        """Nobody here wants a job's history any more: its entries in the stream are ignored
        from now on (the next want reads it from Redis again)."""
        self._marks.pop(job_id, None)
        self._held.pop(job_id, None)

    def _fetch_history(self, job_id: str) -> None:
        """Read a job's whole history (again); what the stream brings meanwhile is held."""
        if job_id in self._marks and self._marks[job_id] is None:
            return  # a read is under way
        self._marks[job_id] = None
        task = asyncio.create_task(self._read_history(job_id), name=f"bus-history-{job_id}")
        self.fetches.add(task)
        task.add_done_callback(functools.partial(self._fetched, job_id))

    def _fetched(self, job_id: str, task: asyncio.Task[None]) -> None:
        self.fetches.discard(task)
        if task.cancelled() or (error := task.exception()) is None:
            return
        # The next want reads it again: a failed read must not leave it "under way" for ever.
        self.history_unwanted(job_id)
        self.hub.history_interest.forget(job_id)
        logger.error("bus: reading the history of job %s failed", job_id, exc_info=error)

    async def _read_history(self, job_id: str) -> None:
        backoff = Backoff()
        while (state := self.hub.get(job_id)) is not None and job_id in self._marks:
            node = state.node
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.get(wire.history_mark_key(node, job_id))
                    pipe.lrange(wire.history_key(node, job_id), -self.hub.histories.max_entries, -1)
                    raw_mark, entries = await pipe.execute()
            except FAILURES as e:
                logger.debug("bus: history of job %s not read yet: %s", job_id, e)
                await asyncio.sleep(backoff.next())
                continue
            if job_id not in self._marks:
                return  # nobody wants it any more
            try:
                mark = wire.HistoryMark.decode(raw_mark) if raw_mark else None
            except wire.BadMessage as e:
                logger.warning("bus: job %s: %s; its history starts over", job_id, e)
                mark = None
            self._marks[job_id] = mark or wire.HistoryMark("0", 0, 0)
            good, dropped = wire.history_entries(entries)
            if dropped:
                self.dropped += dropped
                logger.warning(
                    "bus: job %s: %d history entries in Redis are not json objects; dropped",
                    job_id,
                    dropped,
                )
            self._apply(HistoryLines(node, job_id, good, reset=True, loaded=True))
            for message in self._held.pop(job_id, []):
                self._take_history(message)
            return
        self._marks.pop(job_id, None)  # the job went meanwhile
        self._held.pop(job_id, None)

    def _take_history(self, message: wire.History) -> None:
        job_id = message.job_id
        if job_id not in self._marks:
            return  # nobody here wants it
        mark = self._marks[job_id]
        if mark is None:
            self._held.setdefault(job_id, []).append(message)
            return
        new_mark = message.mark
        if not new_mark.same_history(mark):
            if message.reset and _later(new_mark, mark):
                self._marks[job_id] = new_mark
                self._apply(message.lines(message.entries, reset=True))
            elif _later(new_mark, mark):
                self._fetch_history(job_id)  # a reset (or a new process) went by unseen
            return
        new = new_mark.total - mark.total
        if new <= 0:
            return  # already had (the read above included it)
        if new > len(message.entries):
            self._fetch_history(job_id)  # entries went by unseen
            return
        self._marks[job_id] = new_mark
        entries = message.entries[-new:] if new < len(message.entries) else message.entries
        self._apply(message.lines(entries, reset=False))


def _later(mark: wire.HistoryMark, than: wire.HistoryMark) -> bool:
    """Whether ``mark`` counts a later history than ``than``: a later process of the owner
    (epochs begin with the time), or a later reset of the same one."""
    if mark.epoch != than.epoch:
        return mark.epoch > than.epoch
    return mark.generation > than.generation
