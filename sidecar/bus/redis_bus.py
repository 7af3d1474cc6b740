"""Cluster mode: this sidecar's jobs out to Redis, every other node's jobs in.

A node sidecar (one with a jobs root) publishes each change of its own jobs (``Publisher``),
off the local path; every sidecar, node or gateway, reads every other node's into its hub
(``Reader``). ``Link`` knows whether Redis answers. What travels and where it lies:
``sidecar.bus.wire``; the faults each part handles: docs/cluster.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from sidecar.bus.decoder import Limits
from sidecar.bus.defaults import (
    FINISHED_TTL,
    HEARTBEAT_INTERVAL,
    MAX_BYTES_PER_NODE,
    MAX_JOBS_PER_NODE,
    MAX_NODES,
    NODE_TIMEOUT,
    STREAM_LENGTH,
)
from sidecar.bus.link import FAILURES, Link, connect
from sidecar.bus.publisher import Publisher
from sidecar.bus.reader import Reader
from sidecar.bus.refusals import RefusalWatch
from sidecar.core.contract import MAX_FILE_BYTES
from sidecar.core.events import GuardedSink
from sidecar.core.hub import JobHub

LEAVE_TIMEOUT = 1.0
"""Seconds a stopping node spends saying so."""
SILENCE = 4 * HEARTBEAT_INTERVAL
"""Seconds with nothing from any node not lost after which a gateway calls its bus down: Redis
answers it, but the nodes' writes do not arrive (Redis refuses them, out of memory...)."""


class RedisBus:
    """The bus of one sidecar.

    Args:
        url: Redis' URL (``redis://``, ``rediss://`` or ``unix://``).
        hub: this sidecar's jobs; its node name is this sidecar's ("" for a gateway, which owns
            no job and publishes nothing).
        node_timeout: seconds of silence after which a node is lost.
        stream_length: changes kept in the stream, about.
        finished_ttl: seconds a finished job's history stays in Redis.
        max_document_bytes: the largest document taken from another node (``--max-file-bytes``).
        max_nodes: other nodes known at once (``--max-nodes``).
        max_jobs_per_node: jobs taken of each (``--max-jobs-per-node``).
        max_bytes_per_node: what their states may take (``--max-bytes-per-node``).
    """

    def __init__(
        self,
        url: str,
        hub: JobHub,
        *,
        node_timeout: float = NODE_TIMEOUT,
        stream_length: int = STREAM_LENGTH,
        finished_ttl: int = FINISHED_TTL,
        max_document_bytes: int = MAX_FILE_BYTES,
        max_nodes: int = MAX_NODES,
        max_jobs_per_node: int = MAX_JOBS_PER_NODE,
        max_bytes_per_node: int = MAX_BYTES_PER_NODE,
    ) -> None:
        self.node = hub.node
        self.publishes = bool(hub.node)
        # One client for the reader, which blocks on the stream, one for the writers.
        self._clients = (connect(url), connect(url))
        self.link = Link(
            on_reading=lambda: self.reader.nodes.forgive_silence(), clients=self._clients
        )
        self.reader = Reader(
            self._clients[0],
            self.link,
            hub,
            node_timeout=node_timeout,
            limits=Limits(max_document_bytes),
            max_nodes=max_nodes,
            max_jobs_per_node=max_jobs_per_node,
            max_bytes_per_node=max_bytes_per_node,
        )
        self.refusals = RefusalWatch(self._clients[1])
        self.publisher = Publisher(
            self._clients[1],
            self.link,
            hub,
            node_timeout=node_timeout,
            stream_length=stream_length,
            finished_ttl=finished_ttl,
        )

    def history_wanted(self, job_id: str) -> None:
        self.reader.histories.wanted(job_id)

    def history_unwanted(self, job_id: str) -> None:
        self.reader.histories.unwanted(job_id)

    @property
    def up(self) -> bool:
        return self.reason is None

    @property
    def reason(self) -> str | None:
        if not self.link.up:
            return self.link.reason
        if self.refusals.reason is not None:
            return self.refusals.reason
        silent = self.reader.nodes.silence()
        if not self.publishes and silent >= SILENCE:
            # A node knows its own writes go through; a gateway only hears the nodes'.
            return f"nothing from any node for {silent:.1f} s (does Redis refuse their writes?)"
        return None

    @property
    def sink(self) -> GuardedSink:
        return self.reader.sink

    @property
    def dropped(self) -> int:
        return self.reader.drops.count

    @property
    def nodes_left_out(self) -> int:
        return self.reader.nodes.left_out

    @property
    def jobs_left_out(self) -> int:
        return self.reader.nodes.jobs_left_out

    @property
    def ready(self) -> asyncio.Event:
        return self.link.ready

    def nodes(self) -> dict[str, float]:
        """Seconds since each known node was last heard from (this one: 0)."""
        now = time.monotonic()
        heard = sorted(self.reader.nodes.heard.items())
        seen = {node: round(now - at, 1) for node, at in heard}
        if self.publishes:
            seen[self.node] = 0.0
        return seen

    def parts(self) -> dict[str, Callable[[], Awaitable[None]]]:
        """The bus's background tasks by name, each to run until cancelled (and to be started
        again if it fails: each starts from what it knows)."""
        parts: dict[str, Callable[[], Awaitable[None]]] = {
            "bus-reader": self.reader.run,
            "bus-node-watch": self.reader.watch_nodes,
            "bus-discovery": self.reader.discovery.run,
            "bus-refusals": self.refusals.run,
        }
        if self.publishes:
            parts |= {"bus-publisher": self.publisher.run, "bus-announcer": self.publisher.announce}
        return parts

    async def close(self) -> None:
        """Once the parts have stopped: say this node leaves, and close the connections."""
        fetches = list(self.reader.histories.fetches)
        for task in fetches:
            task.cancel()
        await asyncio.gather(*fetches, return_exceptions=True)
        if self.publishes and self.link.up:
            with contextlib.suppress(*FAILURES, TimeoutError):
                await asyncio.wait_for(self.publisher.leave(), LEAVE_TIMEOUT)
        for client in self._clients:
            with contextlib.suppress(*FAILURES):
                await client.aclose()

    async def run(self) -> None:
        """Every part at once, unsupervised, until cancelled; then ``close`` (for tests and
        scripts: the server supervises the parts one by one)."""
        tasks = [asyncio.ensure_future(work()) for work in self.parts().values()]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.close()
