"""Whether Redis refuses writes: what a gateway, which writes nothing, cannot find out by its own
writes. Redis counts the errors it answers, by kind (``INFO errorstats``); a count of the kinds
that refuse a write (out of memory, a read-only replica, a failed save) that grew means the
nodes' changes are not arriving."""

from __future__ import annotations

import asyncio
from typing import Any, Final

import redis.asyncio as aioredis

from sidecar.bus.link import FAILURES, stop_if_cancelled

INTERVAL: Final = 1.0
"""Seconds between two looks."""
QUIET: Final = 2
"""Looks with no new refusal before writes count as going through again."""
WRITE_ERRORS: Final = ("OOM", "READONLY", "MISCONF", "NOREPLICAS")
"""The kinds of error Redis answers a write it refuses."""


class RefusalWatch:
    """Looks at Redis' error counts every ``INTERVAL``; ``reason`` says why writes are refused
    (None while they go through, or nothing is known)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.reason: str | None = None
        self._counts: dict[str, int] | None = None
        self._quiet = 0

    async def run(self) -> None:
        """Look until cancelled."""
        while True:
            stop_if_cancelled()  # redis-py may have swallowed a cancellation
            try:
                info: dict[str, Any] = await self.redis.info("errorstats")
            except FAILURES:
                stop_if_cancelled()
                self._counts = None  # an outage is the link's to tell
            else:
                self.seen(_counts(info))
            await asyncio.sleep(INTERVAL)

    def seen(self, counts: dict[str, int]) -> None:
        """Redis' error counts now."""
        before, self._counts = self._counts, counts
        if before is None:
            return
        grew = {
            kind: n - before.get(kind, 0) for kind, n in counts.items() if n > before.get(kind, 0)
        }
        if grew:
            said = ", ".join(f"{n} {kind}" for kind, n in sorted(grew.items()))
            self.reason = f"Redis refuses writes ({said} in {INTERVAL:g} s)"
            self._quiet = 0
        elif self.reason is not None:
            self._quiet += 1
            if self._quiet >= QUIET:
                self.reason = None


def _counts(info: dict[str, Any]) -> dict[str, int]:
    counts = {}
    for kind in WRITE_ERRORS:
        value = info.get(f"errorstat_{kind}")
        if isinstance(value, dict) and isinstance(value.get("count"), int):
            counts[kind] = value["count"]
    return counts
