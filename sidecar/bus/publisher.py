"""This node's jobs, from the hub out to Redis.

The hub is watched as a client watches it (``watch_all``): what changed is a set of job ids,
and each pass writes the latest state of each, and what is new of their histories, in one
transaction, in a task no local client waits for. While Redis is down the set grows, and goes
out at reconnection. The node's announcement, every ``HEARTBEAT_INTERVAL``, also finds out
whether Redis lost what it was told (restarted empty): then everything is written again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import Iterator
from typing import Any, Final

import redis.asyncio as aioredis

from sidecar.bus import keys, wire
from sidecar.bus.decoder import HISTORY_CHUNK, HISTORY_CHUNK_BYTES
from sidecar.bus.defaults import FINISHED_TTL, HEARTBEAT_INTERVAL, RUNNING_TTL, STREAM_LENGTH
from sidecar.bus.link import FAILURES, WRITING, Link, stop_if_cancelled
from sidecar.core.backoff import Backoff
from sidecar.core.contract import is_valid_job_id
from sidecar.core.hub import JobHub
from sidecar.core.state import JobState
from sidecar.core.subscription import JobsWatch

logger = logging.getLogger(__name__)

BATCH_JOBS: Final = 100
BATCH_ENTRIES: Final = 5000
"""At most this many jobs and history entries per transaction: a republication of everything
goes out in pieces, and the event loop runs between them."""


class Publisher:
    """Writes the jobs of ``hub`` that are its own node's to Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        link: Link,
        hub: JobHub,
        *,
        node_timeout: float,
        stream_length: int = STREAM_LENGTH,
        finished_ttl: int = FINISHED_TTL,
    ) -> None:
        self.redis = redis
        self.link = link
        self.hub = hub
        self.node = hub.node
        self.node_timeout = node_timeout
        self.stream_length = stream_length
        self.finished_ttl = finished_ttl
        self._republish = False
        self._swept = False
        self._watch: JobsWatch | None = None
        """What changed in the hub (while ``run`` runs); the announcer wakes it to republish."""
        self._published: set[str] = set()
        self._cursors: dict[str, wire.HistoryMark] = {}

    async def announce(self) -> None:
        """Say this node is alive, and find out whether Redis lost what it was told."""
        backoff = Backoff()
        said_twin = announced = False
        ttl = max(1, math.ceil(self.node_timeout))
        while True:
            stop_if_cancelled()  # redis-py may have swallowed a cancellation
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.set(keys.alive_key(self.node), self.hub.epoch, ex=ttl, get=True)
                    self._xadd(pipe, wire.heartbeat_message(self.hub.epoch))
                    # What only this node refreshes leaves Redis a while after it does not.
                    pipe.expire(keys.changes_key(self.node), RUNNING_TTL)
                    pipe.expire(keys.jobs_key(self.node), RUNNING_TTL)
                    before, *_ = await pipe.execute()
            except FAILURES as e:
                await self.link.failed(WRITING, e)
                # Never longer than a quarter of the node timeout: once Redis is back, the
                # others must hear from this node before they take it for lost.
                await asyncio.sleep(min(backoff.next(), self.node_timeout / 4))
                continue
            if before is None:
                self._republish = True  # Redis is new or was emptied: tell it everything
                if self._watch is not None:
                    self._watch.wake.set()
            elif before != self.hub.epoch.encode() and announced and not said_twin:
                # (Before this process's first announcement, it is its predecessor's.)
                logger.warning(
                    "another sidecar announces itself as node %s: node names must be unique",
                    self.node,
                )
                said_twin = True
            announced = True
            self.link.answered(WRITING)
            backoff.reset()
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    async def leave(self) -> None:
        """Say this node's sidecar stops (its announcement goes; the others know at once)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.alive_key(self.node))
            self._xadd(pipe, wire.leave_message())
            await pipe.execute()

    async def run(self) -> None:
        """Write what changes to Redis, until cancelled."""
        watch = self._watch = self.hub.watch_all()
        assert watch.history_changed is not None
        states: set[str] = set()
        # Started again after a failure: what is new of the histories already published (the
        # watch brings every job's state anew).
        histories: set[str] = set(self._cursors)
        backoff = Backoff()
        try:
            while True:
                stop_if_cancelled()
                if not states and not histories and not self._republish:
                    await watch.wake.wait()
                watch.wake.clear()
                states |= watch.changed
                watch.changed = set()
                histories |= watch.history_changed
                watch.history_changed.clear()
                if self._republish:
                    self._republish = self._swept = False
                    self._cursors.clear()
                    states |= {s.job_id for s in self.hub.states()} | self._published
                    histories |= states
                try:
                    if not self._swept:
                        states |= await self._stale_jobs()
                        self._swept = True
                    await self._write(states, histories)
                except FAILURES as e:
                    await self.link.failed(WRITING, e)
                    await asyncio.sleep(backoff.next())
                    continue
                self.link.answered(WRITING)
                backoff.reset()
        finally:
            self._watch = None
            self.hub.unwatch_jobs(watch)

    async def _stale_jobs(self) -> set[str]:
        """This node's jobs that Redis has and this node has not (they went while no sidecar
        of this node ran): they are written as gone."""
        fields: list[bytes | str] = await self.redis.hkeys(keys.jobs_key(self.node))
        known = {f.decode(errors="replace") if isinstance(f, bytes) else f for f in fields}
        # Only ids that could be jobs: any program may write keys that match the pattern.
        stale = {j for j in known if is_valid_job_id(j) and self._own(j) is None}
        self._published |= stale
        return stale

    def _own(self, job_id: str) -> JobState | None:
        state = self.hub.get(job_id)
        return state if state is not None and state.node == self.node else None

    async def _write(self, states: set[str], histories: set[str]) -> None:
        """Write the latest state of ``states`` and what is new of ``histories``, a batch a
        transaction; what is written leaves the sets, and nothing counts as written unless
        its whole batch was."""
        while states or histories:
            cursors = dict(self._cursors)
            published = set(self._published)
            batch_states = set(itertools.islice(states, BATCH_JOBS))
            batch_histories: set[str] = set()
            entries = 0
            async with self.redis.pipeline(transaction=True) as pipe:
                for job_id in batch_states:
                    self._write_state(pipe, job_id, published, cursors)
                for job_id in list(histories):
                    if len(batch_histories) >= BATCH_JOBS or entries >= BATCH_ENTRIES:
                        break
                    batch_histories.add(job_id)
                    entries += self._write_history(pipe, job_id, cursors)
                if pipe.command_stack:
                    await pipe.execute()
            self._cursors, self._published = cursors, published
            states -= batch_states
            histories -= batch_histories
            await asyncio.sleep(0)  # let the clients be served between two batches

    def _write_state(
        self,
        pipe: Any,
        job_id: str,
        published: set[str],
        cursors: dict[str, wire.HistoryMark],
    ) -> None:
        state, version = self._own(job_id), self.hub.version(job_id)
        if state is None or version is None:
            if job_id in published:
                published.discard(job_id)
                cursors.pop(job_id, None)
                self._xadd(pipe, wire.gone_message(job_id))
                pipe.hdel(keys.jobs_key(self.node), job_id)
                pipe.delete(
                    keys.history_key(self.node, job_id),
                    keys.history_mark_key(self.node, job_id),
                )
            return
        if job_id not in published:
            self.hub.histories.use(job_id)  # every history of a node's own jobs goes to the bus
        published.add(job_id)
        message = wire.state_message(state, version.epoch, version.seq)
        self._xadd(pipe, message)
        ttl = self._ttl(state)
        pipe.hset(keys.jobs_key(self.node), job_id, message)
        pipe.expire(keys.history_key(self.node, job_id), ttl)
        pipe.expire(keys.history_mark_key(self.node, job_id), ttl)

    def _write_history(self, pipe: Any, job_id: str, cursors: dict[str, wire.HistoryMark]) -> int:
        """Queue what is new of a job's history; returns how many entries."""
        state = self._own(job_id)
        log = self.hub.histories.use(job_id) if state is not None else None
        if state is None or log is None:
            return 0
        cursor = cursors.get(job_id)
        reset = cursor is None or cursor.generation != log.generation
        entries = list(log.entries) if reset else log.since(cursor.total if cursor else 0)
        if not entries and not reset:
            return 0
        key, mark_key = (
            keys.history_key(self.node, job_id),
            keys.history_mark_key(self.node, job_id),
        )
        if reset:
            pipe.delete(key)
        total = log.total - len(entries)
        for number, chunk in enumerate(_chunks(entries)):
            total += len(chunk)
            mark = wire.HistoryMark(self.hub.epoch, log.generation, total)
            if chunk:
                pipe.rpush(key, *chunk)
            first = reset and number == 0
            self._xadd(pipe, wire.history_message(job_id, chunk, mark=mark, reset=first))
        end = wire.HistoryMark(self.hub.epoch, log.generation, log.total)
        ttl = self._ttl(state)
        pipe.ltrim(key, -log.max_entries, -1)
        pipe.set(mark_key, end.encode(), ex=ttl)
        pipe.expire(key, ttl)
        cursors[job_id] = end
        return len(entries)

    def _ttl(self, state: JobState) -> int:
        return self.finished_ttl if state.complete else RUNNING_TTL

    def _xadd(self, pipe: Any, message: bytes) -> None:
        pipe.xadd(keys.changes_key(self.node), {keys.FIELD: message}, maxlen=self.stream_length)


def _chunks(entries: list[bytes]) -> Iterator[list[bytes]]:
    """History entries a stream message each: at most ``HISTORY_CHUNK`` of them, and no more
    once they pass ``HISTORY_CHUNK_BYTES``; one empty chunk when there are none."""
    chunk: list[bytes] = []
    size = 0
    for entry in entries:
        chunk.append(entry)
        size += len(entry)
        if len(chunk) >= HISTORY_CHUNK or size >= HISTORY_CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk or not entries:
        yield chunk
