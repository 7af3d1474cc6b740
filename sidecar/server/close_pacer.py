"""Closes after a job's end, paced, so that a job's end never holds up another job's update.

When a job completes, its final message goes out at once to every client on the fast path (the
hub writes it during the same read that brought it). What is left, the close handshake, costs
the sidecar about as much again per client (a close frame, the reply, the socket's teardown),
and a thousand clients of jobs that end together would otherwise take it all at once, ahead of
the next files' reads. So closes wait their turn: until the hub has made no new version for
``quiet`` seconds (a burst of writes is over), or at most ``max_wait`` seconds, and then go one
at a time, ``spacing`` seconds apart, so that an update that comes meanwhile waits for one close
at most (a thousand closes take about a second; their clients already hold the final state).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

QUIET: Final = 0.002
MAX_WAIT: Final = 0.5
SPACING: Final = 0.001


@dataclass(frozen=True)
class ClosePolicy:
    """When the waiting closes may go. Pure: the caller says what time it is.

    Args:
        quiet: how long the hub must have made no new version.
        max_wait: how long a close waits for that at most.
        spacing: the time between two closes.
    """

    quiet: float = QUIET
    max_wait: float = MAX_WAIT
    spacing: float = SPACING

    def delay(self, *, now: float, last_change: float, oldest: float) -> float:
        """Seconds to wait before the next close may go (0: now), given the time of the hub's
        last new version and when the oldest waiting close was queued."""
        if now - oldest >= self.max_wait:
            return 0.0
        return max(0.0, min(self.quiet - (now - last_change), oldest + self.max_wait - now))


class ClosePacer:
    """Holds the wake-ups that lead senders to their close, and calls them when their turn
    comes (``run``, a background task).

    Args:
        last_change: when (monotonic clock) the hub last made a new version.
        policy: when closes may go.
    """

    def __init__(
        self, last_change: Callable[[], float], *, policy: ClosePolicy = ClosePolicy()
    ) -> None:
        self._last_change = last_change
        self.policy = policy
        self._waiting: collections.deque[tuple[float, Callable[[], None]]] = collections.deque()
        self._queued = asyncio.Event()

    def __len__(self) -> int:
        return len(self._waiting)

    def later(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` when a close's turn comes."""
        self._waiting.append((time.monotonic(), wake))
        self._queued.set()

    def flush(self) -> None:
        """Call every waiting wake-up now (the server is shutting down: those clients end as
        their jobs did, not with the shutdown's 1001)."""
        while self._waiting:
            self._waiting.popleft()[1]()

    async def run(self) -> None:
        """Release waiting closes as the policy says, until cancelled."""
        while True:
            if not self._waiting:  # (a run started again after a failure finds some waiting)
                await self._queued.wait()
            self._queued.clear()
            while self._waiting:
                policy = self.policy
                delay = policy.delay(
                    now=time.monotonic(),
                    last_change=self._last_change(),
                    oldest=self._waiting[0][0],
                )
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue
                self._waiting.popleft()[1]()
                await asyncio.sleep(policy.spacing)
