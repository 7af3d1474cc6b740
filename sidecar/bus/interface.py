"""What the server needs of a bus, without importing its client library (Redis' client is an
extra: a single sidecar runs without it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from sidecar.core.events import GuardedSink


class BusConfigError(RuntimeError):
    """The bus refuses this sidecar for good (wrong password, no such database): a
    configuration error, not an outage."""


class Bus(Protocol):
    @property
    def up(self) -> bool:
        """Whether the bus answers now."""
        ...

    @property
    def reason(self) -> str | None:
        """Why the bus is down (None while up)."""
        ...

    @property
    def nodes_left_out(self) -> int:
        """Nodes announced and not read (past ``--max-nodes``) at the last look."""
        ...

    @property
    def jobs_left_out(self) -> int:
        """Other nodes' jobs not taken (past ``--max-jobs-per-node``) since start."""
        ...

    @property
    def ready(self) -> asyncio.Event:
        """Set once every job of the cluster has been read, or the bus found unreachable."""
        ...

    @property
    def sink(self) -> GuardedSink:
        """Where the bus hands its events to the hub (it counts those the hub refused)."""
        ...

    @property
    def dropped(self) -> int:
        """Entries read from the bus and dropped as not its protocol's."""
        ...

    def history_wanted(self, job_id: str) -> None:
        """Someone wants another node's job's history: read it from the bus, and follow it."""
        ...

    def history_unwanted(self, job_id: str) -> None:
        """Nobody wants it any more: stop following it."""
        ...

    def nodes(self) -> dict[str, float]:
        """Seconds since each known node was last heard from."""
        ...

    def parts(self) -> dict[str, Callable[[], Awaitable[None]]]:
        """The background tasks that read (and publish), by name: each runs until cancelled,
        and may be started again after it fails."""
        ...

    async def close(self) -> None:
        """Once the parts have stopped: leave the cluster and close the connections."""
        ...
