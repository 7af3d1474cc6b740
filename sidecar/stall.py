"""The stall clock: flips ``stalled`` on jobs whose file stops (or starts again) changing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sidecar.hub import JobHub
from sidecar.state import with_stall


def tick_interval(stall_after: float) -> float:
    """How often to look: often enough to be at most a quarter late, at most once a second."""
    return max(0.05, min(1.0, stall_after / 4))


def sweep(hub: JobHub, *, now: float, stall_after: float) -> int:
    """Apply the stall rule to every job once; returns how many changed."""
    changed = [
        new
        for state in hub.states()
        if (new := with_stall(state, now=now, stall_after=stall_after)) is not state
    ]
    for state in changed:
        hub.put(state)
    return len(changed)


async def run_stall_clock(
    hub: JobHub, *, stall_after: float, clock: Callable[[], float] = time.time
) -> None:
    """Sweep forever, until cancelled."""
    interval = tick_interval(stall_after)
    while True:
        await asyncio.sleep(interval)
        sweep(hub, now=clock(), stall_after=stall_after)
