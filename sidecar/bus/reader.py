"""Every other node's jobs, from Redis into the hub.

Each node writes its own stream (``sidecar.bus.keys``); a reader finds the nodes by their
announcements (``sidecar.bus.discovery``, in a task of its own; at start, and after Redis
restarted, by their streams too, so that a lost node's running jobs are shown), and reads each
node's jobs hash and the position of its stream in one transaction, then follows the stream
from there:
nothing falls in between, nothing is read twice, and a node's entries apply in the order the
node wrote them (a forged ``seq`` pins nothing). Whenever a node's stream lost entries this
reader had not read (Redis restarted, or trimmed past it), that node is read again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from sidecar.bus import decoder, keys, wire
from sidecar.bus.defaults import MAX_BYTES_PER_NODE, MAX_JOBS_PER_NODE, MAX_NODES
from sidecar.bus.discovery import Discovery
from sidecar.bus.history_follow import HistoryFollower
from sidecar.bus.link import FAILURES, READING, Link, stop_if_cancelled
from sidecar.bus.nodes import NodeTable
from sidecar.bus.rate_log import Drops, RateLimitedLog
from sidecar.bus.replies import latest_states
from sidecar.core.backoff import Backoff
from sidecar.core.events import GuardedSink, JobGone, JobPublished
from sidecar.core.hub import JobHub

logger = logging.getLogger(__name__)

READ_BLOCK_MS: Final = 500
READ_COUNT: Final = 100
"""Entries read at most of each stream at a time: a reply is bounded by this many entries of
the largest a node may write (see docs/cluster.md on ``proto-max-bulk-len``)."""
LAG: Final = 2.0
"""Seconds past which this reader is behind (a read not back, or a long reply still being
taken): no node is lost meanwhile, and the time is not counted against the nodes."""
SLICE: Final = 0.005
"""Seconds of work on a reply (decoding, applying) before the event loop is let run."""
STREAM_TYPES: Final = (b"stream", b"none")
HASH_TYPES: Final = (b"hash", b"none")


class Reader:
    """Reads the cluster's jobs into ``hub``, except its own node's."""

    def __init__(
        self,
        redis: aioredis.Redis,
        link: Link,
        hub: JobHub,
        *,
        node_timeout: float,
        limits: decoder.Limits,
        max_nodes: int = MAX_NODES,
        max_jobs_per_node: int = MAX_JOBS_PER_NODE,
        max_bytes_per_node: int = MAX_BYTES_PER_NODE,
    ) -> None:
        self.redis = redis
        self.link = link
        self.hub = hub
        self.limits = limits
        self.sink = GuardedSink(hub.apply, source="bus")
        self.drops = Drops(logger)
        self._log = RateLimitedLog(logger)
        self.nodes = NodeTable(
            hub,
            self.sink,
            self._gone,
            node_timeout=node_timeout,
            max_nodes=max_nodes,
            max_jobs=max_jobs_per_node,
            max_bytes=max_bytes_per_node,
        )
        self.histories = HistoryFollower(redis, hub, self.sink, self.drops)
        self._run_id: str | None = None
        self.discovery = Discovery(
            redis,
            self.nodes,
            hub.node,
            lambda node: self._read_node(node, fresh_only=True),
            link.ready,
        )
        self._reading: set[str] = set()
        """Nodes being read now (by the reader or the discovery): not read twice at once."""
        self.last_read = time.monotonic()
        """When (monotonic) the last read of the streams came back."""

    async def run(self) -> None:
        """Read until cancelled."""
        backoff = Backoff()
        while True:
            stop_if_cancelled()  # redis-py may have swallowed a cancellation
            try:
                await self._catch_up()
                self.link.answered(READING)
                self.link.ready.set()
                backoff.reset()
                await self._follow()
            except FAILURES as e:
                await self.link.failed(READING, e)
                await asyncio.sleep(backoff.next())

    async def _catch_up(self) -> None:
        """After a start or a failure: read again what this reader may have missed."""
        info: dict[str, Any] = await self.redis.info("server")
        run_id = str(info.get("run_id"))
        if run_id != self._run_id:
            # Another run of Redis (empty, or restored): every node is read again, but none of
            # its jobs forgotten (the nodes have not told the new Redis everything yet).
            self._run_id = run_id
            for node in list(self.nodes.read):
                await self._read_node(node, forget_missing=False)
            found = [node async for node in self.discovery.scan(keys.CHANGES)]
            for node in found:
                if node not in self.nodes and not self.nodes.full:
                    await self._read_node(node, stale_if_idle=True)
            logger.info(
                "bus: read %d jobs of %d other nodes", self._job_count(), len(self.nodes.heard)
            )
        else:
            for node in await self._trimmed():
                await self._read_node(node, forget_missing=True)
        self.histories.refetch()

    async def _trimmed(self) -> list[str]:
        """The known nodes whose stream lost entries this reader has not read."""
        known = list(self.nodes.read)
        async with self.redis.pipeline(transaction=False) as pipe:
            for node in known:
                pipe.xrange(keys.changes_key(node), count=1)
            firsts = await pipe.execute(raise_on_error=False)
        behind = []
        for node, first in zip(known, firsts, strict=True):
            last = wire.parse_entry_id(self.nodes.read[node])
            if isinstance(first, Exception) or (first and wire.parse_entry_id(first[0][0]) > last):
                behind.append(node)
        return behind

    async def _read_node(
        self,
        node: str,
        *,
        forget_missing: bool = False,
        fresh_only: bool = False,
        stale_if_idle: bool = False,
    ) -> None:
        """Read a node's jobs and where its stream stands, in one transaction; follow it from
        there (not if it is being read already).

        Args:
            forget_missing: the node's jobs shown here that its hash lacks are gone.
            fresh_only: not if its stream has no entry yet, or its last entry is older than
                the node timeout (its announcement outlived it: it was lost and forgotten).
            stale_if_idle: not if its last entry is that old and no job of it runs.
        """
        if node in self._reading:
            return
        self._reading.add(node)
        try:
            await self._take_node(node, forget_missing, fresh_only, stale_if_idle)
        finally:
            self._reading.discard(node)

    async def _take_node(
        self, node: str, forget_missing: bool, fresh_only: bool, stale_if_idle: bool
    ) -> None:
        changes, jobs = keys.changes_key(node), keys.jobs_key(node)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.time()
            pipe.type(changes)
            pipe.type(jobs)
            pipe.xrevrange(changes, count=1)
            pipe.hlen(jobs)
            pipe.hrandfield(jobs, self.nodes.max_jobs, withvalues=True)
            now, changes_type, jobs_type, last, size, pairs = await pipe.execute(
                raise_on_error=False
            )
        if changes_type not in STREAM_TYPES or jobs_type not in HASH_TYPES:
            self.drops(node, f"its stream or jobs key is a {changes_type!r}, {jobs_type!r}")
            return
        last_id, age = b"0-0", 0.0
        if last:
            last_id = last[0][0]
            age = max(0.0, now[0] + now[1] / 1e6 - wire.parse_entry_id(last_id)[0] / 1000)
        states = await self._states(node, pairs)
        if fresh_only and not last:
            return  # announced, its first heartbeat not written yet: the next look takes it
        stale = age >= self.nodes.node_timeout
        idle = all(message.state.complete for message, _ in states)
        if stale and (fresh_only or (stale_if_idle and idle)):
            return
        if not self.nodes.admit(node, silent_for=age):
            return
        # Followed from there at once: what the stream brings while the states below are
        # taken is newer (and a state read here never goes back past it: not ``ordered``).
        self.nodes.read[node] = last_id
        if size > len(pairs) // 2:
            self.nodes.refuse_jobs(node, size - len(pairs) // 2, size)
        found = set()
        pace = _Pace()
        for message, length in states:
            if self.nodes.take_job(node, message.job_id, length):
                found.add(message.job_id)
                self.sink(message)
            await pace()
        if forget_missing:
            for job_id in set(self.nodes.jobs[node]) - found:
                self._gone(JobGone(node, job_id))

    async def _states(self, node: str, pairs: Any) -> list[tuple[JobPublished, int]]:
        """A node's jobs hash decoded: each state, and its size."""
        if isinstance(pairs, Exception):
            return []
        states = []
        pace = _Pace()
        for job_id, value in zip(pairs[::2], pairs[1::2], strict=True):
            try:
                state = decoder.decode_state(job_id, value, node, self.limits)
                states.append((state, len(value)))
            except wire.BadMessage as e:
                self.drops(node, f"job {wire.short(job_id)} in its jobs hash: {e}")
            await pace()
        return states

    def _job_count(self) -> int:
        return sum(len(jobs) for jobs in self.nodes.jobs.values())

    async def _follow(self) -> None:
        """Follow every known node's stream (the discovery adds the new ones)."""
        while True:
            stop_if_cancelled()
            streams = self.nodes.streams()
            if not streams:
                self.last_read = time.monotonic()
                await asyncio.sleep(READ_BLOCK_MS / 1000)
                continue
            try:
                reply: Any = await self.redis.xread(streams, count=READ_COUNT, block=READ_BLOCK_MS)
            except ResponseError as e:
                if "WRONGTYPE" not in str(e):
                    raise
                await self._drop_broken_streams()
                continue
            self._came_back()
            self.link.answered(READING)
            pace = _Pace()
            for stream, entries in reply or ():
                node = keys.node_of(stream, keys.CHANGES)
                if node is None:
                    continue
                messages = []
                for entry_id, fields in entries:
                    if node not in self.nodes:
                        break  # forgotten meanwhile
                    self.nodes.read[node] = entry_id
                    data = fields.get(keys.FIELD)
                    if (message := self._decode(node, data)) is not None:
                        messages.append((message, len(data or b"")))
                    await pace()
                for message, size in latest_states(messages):
                    if node not in self.nodes:
                        break
                    self._take(node, message, size)
                    await pace()  # a long reply: behind (LAG) until the next read comes back

    def _came_back(self) -> None:
        """A read came back: if this reader was behind, the nodes were not silent meanwhile."""
        now = time.monotonic()
        if now - self.last_read > LAG:
            self.nodes.shift(now - self.last_read - READ_BLOCK_MS / 1000)
        self.last_read = now

    @property
    def reading(self) -> bool:
        """Whether the nodes can be heard now: Redis answers, and this reader keeps up."""
        return self.link.reading and time.monotonic() - self.last_read < LAG

    async def _drop_broken_streams(self) -> None:
        """A node's stream key holds something else: that node is forgotten (read again only
        once its announcement is found again, and its keys right)."""
        known = list(self.nodes.read)
        async with self.redis.pipeline(transaction=False) as pipe:
            for node in known:
                pipe.type(keys.changes_key(node))
            types = await pipe.execute()
        for node, kind in zip(known, types, strict=True):
            if kind not in STREAM_TYPES:
                self.drops(node, f"its stream key is a {kind!r}")
                self.nodes.forget(node)
                self.discovery.set_aside(node)

    def _decode(self, node: str, data: bytes | None) -> wire.Message | None:
        """A stream entry's message; None when it is dropped, or says the node stopped."""
        if data is None:
            self.drops(node, "a stream entry without its field")
            return None
        try:
            message = decoder.decode(data, node, self.limits)
        except wire.BadMessage as e:
            self.drops(node, e)
            return None
        if isinstance(message, wire.Leave):
            self._log(logging.INFO, "node %s: its sidecar stopped", node)
            return None
        self.nodes.heard_from(node)
        return message

    def _take(self, node: str, message: wire.Message, size: int) -> None:
        if isinstance(message, JobGone):
            self._gone(message)
        elif isinstance(message, JobPublished):
            if self.nodes.take_job(node, message.job_id, size):
                self.sink(message)
        elif isinstance(message, wire.History):
            self.histories.take(message)

    def _gone(self, message: JobGone) -> None:
        self.nodes.job_gone(message.origin, message.job_id)
        state = self.hub.get(message.job_id)
        if state is None or state.node == message.origin:  # another node's id: not its to end
            self.histories.unwanted(message.job_id)
        self.sink(message)

    async def watch_nodes(self) -> None:
        """Lose each node silent for the node timeout, until cancelled."""
        await self.nodes.watch(lambda: self.reading)


class _Pace:
    """Lets the event loop run every ``SLICE`` seconds of a long piece of work: ``await
    pace()`` after each item (True when it let it run)."""

    def __init__(self) -> None:
        self._since = time.monotonic()

    async def __call__(self) -> bool:
        if time.monotonic() - self._since < SLICE:
            return False
        await asyncio.sleep(0)
        self._since = time.monotonic()
        return True
