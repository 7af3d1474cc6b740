"""The other nodes a reader knows: when each was last heard from, how far its stream is read,
which jobs are its own; bounded, and each heartbeat O(1).

A node is known from its first read until it is forgotten: lost (silent for the node timeout)
with no job of it running, its jobs then leave this sidecar with it. At most ``max_nodes`` are
known, each with at most ``max_jobs`` jobs whose states take at most ``max_bytes`` (encoded, as
read: a document's objects take 5 to 15 times that in memory): what is past a limit is refused,
counted, and logged at a bounded rate.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from sidecar.bus import keys
from sidecar.bus.defaults import MAX_BYTES_PER_NODE, MAX_JOBS_PER_NODE, MAX_NODES
from sidecar.bus.rate_log import RateLimitedLog
from sidecar.core.events import Event, JobGone, NodeBack, NodeLost
from sidecar.core.hub import JobHub

logger = logging.getLogger(__name__)


class NodeTable:
    """The nodes ``hub`` hears of through the bus (never its own)."""

    def __init__(
        self,
        hub: JobHub,
        sink: Callable[[Event], None],
        gone: Callable[[JobGone], None],
        *,
        node_timeout: float,
        max_nodes: int = MAX_NODES,
        max_jobs: int = MAX_JOBS_PER_NODE,
        max_bytes: int = MAX_BYTES_PER_NODE,
    ) -> None:
        self.hub = hub
        self._sink, self._gone = sink, gone
        self.node_timeout = node_timeout
        self.max_nodes, self.max_jobs, self.max_bytes = max_nodes, max_jobs, max_bytes
        self.heard: dict[str, float] = {}
        """Each known node and when it was last heard from (monotonic)."""
        self.read: dict[str, bytes] = {}
        """Each known node's stream: the id of the last entry read."""
        self.jobs: dict[str, dict[str, int]] = {}
        """Each known node's jobs, and the size of each one's state."""
        self._bytes: dict[str, int] = {}
        self.left_out = 0
        """Nodes announced and not read, at the last look: past ``max_nodes``."""
        self.jobs_left_out = 0
        """Jobs not taken (past ``max_jobs``), since start."""
        self.last_arrival = -math.inf
        """When (monotonic) an entry last came from any node."""
        self._log = RateLimitedLog(logger)

    def __contains__(self, node: str) -> bool:
        return node in self.heard

    @property
    def full(self) -> bool:
        return len(self.heard) >= self.max_nodes

    def say_left_out(self) -> None:
        self._log(
            logging.WARNING,
            "bus: %d nodes announced in Redis not read: %d known already (--max-nodes)",
            self.left_out,
            len(self.heard),
        )

    def admit(self, node: str, *, silent_for: float) -> bool:
        """Know ``node`` from now (heard from ``silent_for`` seconds ago), unless that would be
        more than ``max_nodes``; True if it is known now."""
        if node not in self.heard:
            if self.full:
                self.left_out += 1
                self.say_left_out()
                return False
            self.jobs[node] = {}
            self._bytes[node] = 0
            self.read.setdefault(node, b"0-0")
        at = time.monotonic() - silent_for
        self.heard[node] = max(self.heard.get(node, -math.inf), at)
        self.last_arrival = max(self.last_arrival, at)
        return True

    def heard_from(self, node: str) -> None:
        """An entry came from ``node`` (O(1))."""
        now = time.monotonic()
        self.heard[node] = self.last_arrival = now
        if node in self.hub.lost_nodes:
            self._log(logging.INFO, "node %s is back", node)
            self._sink(NodeBack(node))

    def take_job(self, node: str, job_id: str, size: int) -> bool:
        """Whether ``node``'s job, in a state of ``size`` bytes, may be shown: within
        ``max_jobs`` and ``max_bytes`` (a job shown already keeps its last state otherwise)."""
        jobs = self.jobs[node]
        known = job_id in jobs
        total = self._bytes[node] - jobs.get(job_id, 0) + size
        why = ""
        if not known and len(jobs) >= self.max_jobs:
            why = f"the node has {len(jobs)} already (--max-jobs-per-node)"
        elif total > self.max_bytes:
            why = f"its states would take {total} bytes (--max-bytes-per-node {self.max_bytes})"
        if why:
            self.jobs_left_out += 1
            self._log(logging.WARNING, "bus: node %s: job %s not taken: %s", node, job_id, why)
            return False
        jobs[job_id] = size
        self._bytes[node] = total
        return True

    def refuse_jobs(self, node: str, count: int, held: int) -> None:
        """``count`` jobs of ``node`` in Redis were not read: it holds ``held`` in all."""
        self.jobs_left_out += count
        self._log(
            logging.WARNING,
            "bus: node %s has %d jobs in Redis; %d of them not shown (--max-jobs-per-node %d)",
            node,
            held,
            count,
            self.max_jobs,
        )

    def job_gone(self, node: str, job_id: str) -> None:
        size = self.jobs.get(node, {}).pop(job_id, None)
        if size is not None:
            self._bytes[node] -= size

    def shift(self, seconds: float) -> None:
        """This reader was behind for ``seconds``: that long of each node's silence is not its."""
        now = time.monotonic()
        self.heard = {node: min(now, at + seconds) for node, at in self.heard.items()}

    def forgive_silence(self) -> None:
        """Redis answers again: silence while it did not is not the nodes' fault."""
        self.heard = dict.fromkeys(self.heard, time.monotonic())

    def streams(self) -> dict[Any, Any]:
        """What to read next: each known node's stream key and the last id read of it."""
        return {keys.changes_key(node): last for node, last in self.read.items()}

    def silence(self) -> float:
        """Seconds since anything came from any node not lost; 0 when none is known."""
        if not any(node not in self.hub.lost_nodes for node in self.heard):
            return 0.0
        return time.monotonic() - self.last_arrival

    async def watch(self, reading: Callable[[], bool]) -> None:
        """Lose each node silent for the node timeout (while ``reading``), forget each lost one
        with nothing running, until cancelled."""
        while True:
            await asyncio.sleep(min(0.25, self.node_timeout / 4))
            if reading():
                self.tick()

    def tick(self) -> None:
        now = time.monotonic()
        for node, at in list(self.heard.items()):
            if now - at < self.node_timeout:
                continue
            lost = node in self.hub.lost_nodes
            if not lost:
                self._sink(NodeLost(node))
            if self._running(node):
                if not lost:
                    why = f"not heard from for {self.node_timeout:g} s"
                    self._log(
                        logging.WARNING,
                        "node %s lost: %s; its running jobs are shown stalled",
                        node,
                        why,
                    )
                continue
            self.forget(node, quietly=lost)

    def forget(self, node: str, *, quietly: bool = False) -> None:
        """Forget ``node`` and its jobs (its memory freed): nothing of it runs any more."""
        if not quietly:
            self._log(logging.INFO, "node %s is gone, with no job running: forgotten", node)
        for job_id in list(self.jobs.pop(node, {})):
            self._gone(JobGone(node, job_id))
        self._bytes.pop(node, None)
        self.heard.pop(node, None)
        self.read.pop(node, None)
        self._sink(NodeBack(node))  # no longer lost: not known at all

    def _running(self, node: str) -> bool:
        for job_id in self.jobs.get(node, ()):
            state = self.hub.get(job_id)
            if state is not None and state.node == node and not state.complete:
                return True
        return False
