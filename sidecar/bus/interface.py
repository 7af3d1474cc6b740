"""What the server needs of a bus, without importing its client library (Redis' client is an
extra: a single sidecar runs without it)."""

from __future__ import annotations

import asyncio
from typing import Protocol


class BusConfigError(RuntimeError):
    """The bus refuses this sidecar for good (wrong password, no such database): a
    configuration error, not an outage."""


class Bus(Protocol):
    @property
    def up(self) -> bool:
        """Whether the bus answers now."""
        ...

    @property
    def ready(self) -> asyncio.Event:
        """Set once every job of the cluster has been read, or the bus found unreachable."""
        ...

    def nodes(self) -> dict[str, float]:
        """Seconds since each known node was last heard from."""
        ...

    async def run(self) -> None:
        """Read (and publish) until cancelled."""
        ...
