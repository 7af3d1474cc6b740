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
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from sidecar.bus import wire
from sidecar.bus.link import FAILURES, Backoff, Link
from sidecar.core.events import HistoryLines, JobGone, JobPublished, NodeBack, NodeLost
from sidecar.core.hub import JobHub

logger = logging.getLogger(__name__)

RESTARTED: Final = "restarted"
TRIMMED: Final = "trimmed"
READ_BLOCK_MS: Final = 1000
READ_COUNT: Final = 1000
MGET_BATCH: Final = 500


class Reader:
    """Reads the cluster's jobs into ``hub``, except this node's own (``node``)."""

    def __init__(
        self, redis: aioredis.Redis, link: Link, hub: JobHub, *, node: str, node_timeout: float
    ) -> None:
        self.redis = redis
        self.link = link
        self.hub = hub
        self.node = node
        self.node_timeout = node_timeout
        self.heard: dict[str, float] = {}
        """Each known node and when it was last heard from (monotonic)."""
        # Histories of other nodes' jobs that someone here wants: how far each is applied
        # (None while it is read), and what came from the stream meanwhile.
        self._marks: dict[str, wire.HistoryMark | None] = {}
        self._held: dict[str, list[wire.History]] = {}
        self.fetches: set[asyncio.Task[None]] = set()

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
                behind = "start" if last is None else await self._behind(last)
                if behind is not None:
                    last = await self._bootstrap(forget_missing=behind == TRIMMED)
                assert last is not None
                self.link.answered()
                self.link.ready.set()
                backoff.reset()
                while True:
                    reply: Any = await self.redis.xread(
                        {wire.CHANGES: last}, count=READ_COUNT, block=READ_BLOCK_MS
                    )
                    self.link.answered()
                    for _stream, entries in reply or ():
                        for entry_id, fields in entries:
                            last = entry_id
                            self._receive(fields.get(wire.FIELD))
            except FAILURES as e:
                self.link.failed(e)
                await self.redis.connection_pool.disconnect()
                await asyncio.sleep(backoff.next())

    async def _behind(self, last: bytes) -> str | None:
        """Whether the stream lost entries this reader has not read: Redis ``RESTARTED``
        (empty), or the stream ``TRIMMED`` past it. Then everything is read again."""
        try:
            info = await self.redis.xinfo_stream(wire.CHANGES)
        except ResponseError:
            return RESTARTED  # no stream at all
        newest = wire.parse_entry_id(info["last-generated-id"])
        first = info.get("first-entry")
        mine = wire.parse_entry_id(last)
        if newest < mine:
            return RESTARTED  # a younger stream
        if first is not None and wire.parse_entry_id(first[0]) > mine:
            return TRIMMED
        return None

    async def _bootstrap(self, *, forget_missing: bool = False) -> bytes:
        """Read the current state of every job of the cluster; returns the stream position
        from which to follow. Entries written meanwhile come again from the stream; older
        versions than the hub has are ignored there.

        Args:
            forget_missing: remove the other nodes' jobs that Redis no longer has (their end
                went by in the part of the stream this reader missed). Not after a restart:
                the nodes have not told the new Redis everything yet.
        """
        try:
            info = await self.redis.xinfo_stream(wire.CHANGES)
            last: bytes = info["last-generated-id"]
        except ResponseError:
            last = b"0-0"
        alive = {wire.node_of_key(k) async for k in self._scan(wire.NODE_PATTERN)}
        keys = [k async for k in self._scan(wire.JOB_PATTERN)]
        nodes: set[str] = set()
        found: set[str] = set()
        for start in range(0, len(keys), MGET_BATCH):
            values: list[Any] = await self.redis.mget(keys[start : start + MGET_BATCH])
            for data in values:
                message = self._decode(data)
                if isinstance(message, JobPublished) and message.origin != self.node:
                    nodes.add(message.origin)
                    found.add(message.job_id)
                    self.hub.apply(message)
        if forget_missing:
            for state in list(self.hub.states()):
                if state.node != self.node and state.job_id not in found:
                    self.hub.apply(JobGone(state.node, state.job_id))
        now = time.monotonic()
        for node in (nodes | alive) - {self.node}:
            self.heard.setdefault(node, now)
            if node not in alive and node not in self.hub.lost_nodes:
                self._lose(node)  # its announcement expired: it is gone already
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
            logger.warning("bus: ignored a message that is not this protocol's: %s", e)
            return None

    def _receive(self, data: bytes | None) -> None:
        message = self._decode(data)
        if message is None or message.origin == self.node:
            return
        self.heard[message.origin] = time.monotonic()
        if message.origin in self.hub.lost_nodes:
            logger.info("node %s is back", message.origin)
            self.hub.apply(NodeBack(message.origin))
        if isinstance(message, JobPublished | JobGone):
            if isinstance(message, JobGone):
                self._marks.pop(message.job_id, None)
            self.hub.apply(message)
        elif isinstance(message, wire.History):
            self._take_history(message)

    async def watch_nodes(self) -> None:
        """Tell the hub of each node silent for the node timeout, until cancelled."""
        while True:
            await asyncio.sleep(min(0.25, self.node_timeout / 4))
            if not self.link.up:
                continue
            now = time.monotonic()
            for node, at in list(self.heard.items()):
                if now - at >= self.node_timeout and node not in self.hub.lost_nodes:
                    self._lose(node)

    def _lose(self, node: str) -> None:
        logger.warning(
            "node %s lost: not heard from for %g s; its running jobs are shown stalled",
            node,
            self.node_timeout,
        )
        self.hub.apply(NodeLost(node))

    def history_wanted(self, job_id: str) -> None:
        """Someone here wants a job's history: if it is another node's, read it from Redis."""
        state = self.hub.get(job_id)
        if state is not None and state.node != self.node and job_id not in self._marks:
            self._fetch_history(job_id)

    def _fetch_history(self, job_id: str) -> None:
        self._marks[job_id] = None
        task = asyncio.create_task(self._read_history(job_id), name=f"bus-history-{job_id}")
        self.fetches.add(task)
        task.add_done_callback(self.fetches.discard)

    async def _read_history(self, job_id: str) -> None:
        state = self.hub.get(job_id)
        if state is None:
            return
        node = state.node
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.get(wire.history_mark_key(node, job_id))
                pipe.lrange(wire.history_key(node, job_id), 0, -1)
                raw_mark, entries = await pipe.execute()
        except FAILURES as e:
            logger.debug("bus: history of job %s not read: %s (again on reconnection)", job_id, e)
            return
        if job_id not in self._marks:
            return  # the job went meanwhile
        mark = wire.HistoryMark.decode(raw_mark) if raw_mark else wire.HistoryMark(0, 0)
        self._marks[job_id] = mark
        self.hub.apply(HistoryLines(node, job_id, tuple(entries), reset=True, loaded=True))
        for message in self._held.pop(job_id, []):
            self._take_history(message)

    def _take_history(self, message: wire.History) -> None:
        job_id = message.job_id
        if job_id not in self._marks:
            return  # nobody here wants it
        mark = self._marks[job_id]
        if mark is None:
            self._held.setdefault(job_id, []).append(message)
            return
        if message.mark.generation != mark.generation:
            if message.reset and message.mark.generation > mark.generation:
                self._marks[job_id] = message.mark
                self.hub.apply(message.lines(message.entries, reset=True))
            elif message.mark.generation > mark.generation:
                self._fetch_history(job_id)  # a reset went by unseen: read it all again
            return
        new = message.mark.total - mark.total
        if new <= 0:
            return  # already had (the read above included it)
        if new > len(message.entries):
            self._fetch_history(job_id)  # entries went by unseen
            return
        self._marks[job_id] = message.mark
        entries = message.entries[-new:] if new < len(message.entries) else message.entries
        self.hub.apply(message.lines(entries, reset=False))
