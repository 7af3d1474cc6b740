"""This node's jobs, from the hub out to Redis.

The hub is watched as a client watches it (``watch_all``): what changed is a set of job ids,
and each pass writes the latest state of each, and what is new of their histories, in one
transaction, in a task no local client waits for. While Redis is down the set grows, and goes
out at reconnection. The node's announcement, every ``HEARTBEAT_INTERVAL``, also finds out
whether Redis lost what it was told (restarted empty): then everything is written again.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any, Final

import redis.asyncio as aioredis

from sidecar.bus import wire
from sidecar.bus.defaults import FINISHED_TTL, HEARTBEAT_INTERVAL, RUNNING_TTL, STREAM_LENGTH
from sidecar.bus.link import FAILURES, Backoff, Link
from sidecar.core.hub import JobHub

logger = logging.getLogger(__name__)

HISTORY_CHUNK: Final = 500
"""History entries per stream entry."""


class Publisher:
    """Writes ``node``'s own jobs of ``hub`` to Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        link: Link,
        hub: JobHub,
        *,
        node: str,
        node_timeout: float,
        stream_length: int = STREAM_LENGTH,
        finished_ttl: int = FINISHED_TTL,
    ) -> None:
        self.redis = redis
        self.link = link
        self.hub = hub
        self.node = node
        self.node_timeout = node_timeout
        self.stream_length = stream_length
        self.finished_ttl = finished_ttl
        self._republish = False
        self._wake = asyncio.Event()
        self._published: set[str] = set()
        self._cursors: dict[str, wire.HistoryMark] = {}

    async def announce(self) -> None:
        """Say this node is alive, and find out whether Redis lost what it was told."""
        backoff = Backoff()
        said_twin = False
        ttl = max(1, math.ceil(self.node_timeout))
        announced = False
        while True:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.set(wire.node_key(self.node), self.hub.epoch, ex=ttl, get=True)
                    pipe.xadd(
                        wire.CHANGES,
                        {wire.FIELD: wire.heartbeat_message(self.node, self.hub.epoch)},
                        maxlen=self.stream_length,
                    )
                    before, _ = await pipe.execute()
                if before is None:
                    self._republish = True  # Redis is new or was emptied: tell it everything
                    self._wake.set()
                elif before.decode() != self.hub.epoch and announced and not said_twin:
                    # (Before this process's first announcement, it is its predecessor's.)
                    logger.warning(
                        "another sidecar announces itself as node %s: node names must be unique",
                        self.node,
                    )
                    said_twin = True
                announced = True
                backoff.reset()
                await asyncio.sleep(HEARTBEAT_INTERVAL)
            except FAILURES as e:
                self.link.failed(e)
                await asyncio.sleep(backoff.next())

    async def run(self) -> None:
        """Write what changes to Redis, until cancelled."""
        watch = self.hub.watch_all()
        assert watch.history_changed is not None
        states: set[str] = set()
        histories: set[str] = set()
        backoff = Backoff()
        try:
            while True:
                if not states and not histories and not self._republish:
                    waits = [asyncio.ensure_future(watch.wake.wait())]
                    waits.append(asyncio.ensure_future(self._wake.wait()))
                    try:
                        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for waiter in waits:
                            waiter.cancel()
                watch.wake.clear()
                self._wake.clear()
                states |= watch.changed
                watch.changed = set()
                histories |= watch.history_changed
                watch.history_changed.clear()
                if self._republish:
                    self._republish = False
                    self._cursors.clear()
                    states |= {s.job_id for s in self.hub.states()} | self._published
                    histories |= states
                try:
                    await self._write(states, histories)
                except FAILURES as e:
                    self.link.failed(e)
                    await asyncio.sleep(backoff.next())
                    continue
                states, histories = set(), set()
                backoff.reset()
        finally:
            self.hub.unwatch_jobs(watch)

    async def _write(self, states: set[str], histories: set[str]) -> None:
        """Write the latest state of ``states`` and what is new of ``histories``, in one
        transaction; nothing is counted as written unless it all was."""
        cursors = dict(self._cursors)
        published = set(self._published)
        async with self.redis.pipeline(transaction=True) as pipe:
            for job_id in states:
                self._write_state(pipe, job_id, published)
            for job_id in histories:
                self._write_history(pipe, job_id, cursors)
            if not pipe.command_stack:
                return
            await pipe.execute()
        self._cursors, self._published = cursors, published

    def _write_state(self, pipe: Any, job_id: str, published: set[str]) -> None:
        state, version = self.hub.get(job_id), self.hub.version(job_id)
        if state is None or version is None or state.node != self.node:
            if job_id in published:
                published.discard(job_id)
                self._xadd(pipe, wire.gone_message(self.node, job_id))
                pipe.delete(
                    wire.job_key(self.node, job_id),
                    wire.history_key(self.node, job_id),
                    wire.history_mark_key(self.node, job_id),
                )
            return
        if job_id not in published:
            self.hub.history(job_id)  # every history of a node's own jobs goes to the bus
        published.add(job_id)
        message = wire.state_message(state, version.epoch, version.seq)
        self._xadd(pipe, message)
        ttl = self.finished_ttl if state.complete else RUNNING_TTL
        pipe.set(wire.job_key(self.node, job_id), message, ex=ttl)
        pipe.expire(wire.history_key(self.node, job_id), ttl)
        pipe.expire(wire.history_mark_key(self.node, job_id), ttl)

    def _write_history(self, pipe: Any, job_id: str, cursors: dict[str, wire.HistoryMark]) -> None:
        state = self.hub.get(job_id)
        log = self.hub.history(job_id) if state is not None and state.node == self.node else None
        if log is None:
            return
        cursor = cursors.get(job_id)
        reset = cursor is None or cursor.generation != log.generation
        entries = list(log.entries) if reset else log.since(cursor.total if cursor else 0)
        if not entries and not reset:
            return
        key, mark_key = (
            wire.history_key(self.node, job_id),
            wire.history_mark_key(self.node, job_id),
        )
        if reset:
            pipe.delete(key)
        total = log.total - len(entries)
        ttl = self.finished_ttl if state is not None and state.complete else RUNNING_TTL
        for start in range(0, max(len(entries), 1), HISTORY_CHUNK):
            chunk = entries[start : start + HISTORY_CHUNK]
            total += len(chunk)
            mark = wire.HistoryMark(log.generation, total)
            if chunk:
                pipe.rpush(key, *chunk)
            self._xadd(
                pipe,
                wire.history_message(
                    self.node, job_id, chunk, mark=mark, reset=reset and start == 0
                ),
            )
        pipe.ltrim(key, -log.max_entries, -1)
        pipe.set(mark_key, wire.HistoryMark(log.generation, log.total).encode(), ex=ttl)
        pipe.expire(key, ttl)
        cursors[job_id] = wire.HistoryMark(log.generation, log.total)

    def _xadd(self, pipe: Any, message: bytes) -> None:
        pipe.xadd(wire.CHANGES, {wire.FIELD: message}, maxlen=self.stream_length)
