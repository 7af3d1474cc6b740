"""Finding the nodes a reader does not know yet: a ``SCAN`` of their announcements, in its own
task, a step at a time, so that no keyspace, however large (anyone may write a million keys
under a node's own prefix), holds up the reading of the streams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import redis.asyncio as aioredis

from sidecar.bus import keys
from sidecar.bus.link import FAILURES, stop_if_cancelled
from sidecar.bus.nodes import NodeTable
from sidecar.core.backoff import Backoff

INTERVAL: Final = 0.5
"""Seconds between the end of one look and the start of the next."""
STEP: Final = 1000
"""Keys Redis walks a ``SCAN`` step (some milliseconds of its time)."""
STEP_PAUSE: Final = 0.005
"""Seconds between two steps of a look: a huge keyspace costs Redis a share of a core, not all."""
BATCH: Final = 32
"""Nodes read at most in one look: a flood of announcements delays nothing else."""

ReadNode = Callable[[str], Awaitable[None]]


class Discovery:
    """Looks for new nodes for ``nodes``; ``read_node`` reads one found (and takes it, or
    not: an announcement that outlived its node)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        nodes: NodeTable,
        own: str,
        read_node: ReadNode,
        ready: asyncio.Event,
    ) -> None:
        self.redis, self.nodes, self.own, self._read_node = redis, nodes, own, read_node
        self._ready = ready
        self._looked: dict[str, float] = {}
        """Nodes read and not taken, and when: read again no sooner than a node timeout later."""

    def set_aside(self, node: str) -> None:
        """Do not read ``node`` again for a node timeout (its keys were broken)."""
        self._looked[node] = time.monotonic()

    async def run(self) -> None:
        """Look, then look again, until cancelled (from the reader's first reading of every
        node on)."""
        await self._ready.wait()
        backoff = Backoff()
        while True:
            stop_if_cancelled()  # redis-py may have swallowed a cancellation
            try:
                await self.look()
            except FAILURES:
                stop_if_cancelled()  # Redis is down: the reader says so; look again later
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            await asyncio.sleep(INTERVAL)

    async def look(self) -> None:
        """Read the nodes newly announced: at most ``BATCH``, none while ``--max-nodes`` are
        known (they are counted, as left out)."""
        now = time.monotonic()
        timeout = self.nodes.node_timeout
        self._looked = {n: at for n, at in self._looked.items() if now - at < timeout}
        count, chosen = 0, list[str]()
        async for node in self.scan(keys.ALIVE, pause=STEP_PAUSE):
            if node in self.nodes:
                continue
            count += 1  # (a node twice, should SCAN return it twice: a count, not a set)
            if len(chosen) < BATCH and node not in self._looked and node not in chosen:
                chosen.append(node)
        self.nodes.left_out = count if self.nodes.full else 0
        if self.nodes.full:
            self.nodes.say_left_out()
            return
        for node in chosen:
            self._looked[node] = time.monotonic()
            await self._read_node(node)

    async def scan(self, suffix: str, *, pause: float = 0.0) -> AsyncIterator[str]:
        """Every node with a key of that kind (not this one), a ``SCAN`` step at a time."""
        cursor = 0
        while True:
            stop_if_cancelled()
            cursor, found = await self.redis.scan(cursor, match=keys.pattern(suffix), count=STEP)
            for key in found:
                node = keys.node_of(key, suffix)
                if node is not None and node != self.own:
                    yield node
            if cursor == 0:
                return
            await asyncio.sleep(pause)
