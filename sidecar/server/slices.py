"""The event loop's time for long work, shared: walks of every job, a slice at a time.

A ``GET /api/jobs`` of 100,000 jobs or a ``/ws/jobs`` snapshot walks every job; done in one go it
held every other client up for a second or more. Such work runs in slices of at most
``SLICE_SECONDS``, one slice per turn of the event loop across all of it under way: the long
works take turns (first come, first served), and between two slices the event loop serves
everything else. Three dashboards connecting at once thus hold other clients up by one slice at
a time, not three.
"""

from __future__ import annotations

import asyncio
import collections
import time
import weakref
from collections.abc import AsyncIterator, Iterable
from typing import Final

SLICE_SECONDS: Final = 0.002
CHECK_EVERY: Final = 16
"""Items of work between two looks at the clock."""


class _Turns:
    """Whose turn it is: one long work at a time, the others in line."""

    __slots__ = ("held", "line")

    def __init__(self) -> None:
        self.held = False
        self.line: collections.deque[asyncio.Future[None]] = collections.deque()

    def hand_over(self) -> None:
        """The turn goes to the first in line (it stays held), or is free."""
        while self.line:
            waiting = self.line.popleft()
            if not waiting.done():
                waiting.set_result(None)
                return
        self.held = False


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turns] = weakref.WeakKeyDictionary()


class Slices:
    """One piece of long work's turns at the event loop: ``start``, then ``due`` after each item
    of work and ``pause`` when it says so, ``stop`` at the end (or before awaiting anything
    else, such as a client taking what was made: that wait must not hold the others' turns).
    """

    __slots__ = ("_count", "_deadline", "_held", "_turns")

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        turns = _turns.get(loop)
        if turns is None:
            turns = _turns[loop] = _Turns()
        self._turns = turns
        self._held = False
        self._count = 0
        self._deadline = 0.0

    async def start(self) -> None:
        """Wait for a turn (after letting the event loop go once)."""
        await asyncio.sleep(0)
        turns = self._turns
        if turns.held:
            waiting = asyncio.get_running_loop().create_future()
            turns.line.append(waiting)
            try:
                await waiting
            except asyncio.CancelledError:
                if waiting.done() and not waiting.cancelled():
                    turns.hand_over()  # handed the turn, but cancelled: it goes on
                raise
        turns.held = True
        self._held = True
        self._deadline = time.perf_counter() + SLICE_SECONDS

    def stop(self) -> None:
        if self._held:
            self._held = False
            self._turns.hand_over()

    def due(self) -> bool:
        """Whether this slice is over (looked at every ``CHECK_EVERY`` calls)."""
        self._count += 1
        return self._count % CHECK_EVERY == 0 and time.perf_counter() > self._deadline

    def over(self) -> bool:
        """Whether this slice is over (for work whose every item is long: a look each time)."""
        return time.perf_counter() > self._deadline

    async def pause(self) -> None:
        """End this slice: the next turn of the event loop goes to everything else, and the
        next slice to the first long work in line, if any (this one then waits for its turn)."""
        if self._turns.line:
            self.stop()
            await self.start()
            return
        await asyncio.sleep(0)  # the turn is kept: nobody waits for it
        self._deadline = time.perf_counter() + SLICE_SECONDS


async def in_slices(pieces: Iterable[bytes]) -> AsyncIterator[bytes]:
    """``pieces`` (each one item of work, some empty) made a slice at a time, and joined into
    one chunk per slice: a response body that holds nobody up, however long it is. Each chunk
    goes to the client while the others have their turn."""
    slices = Slices()
    await slices.start()
    parts: list[bytes] = []
    try:
        for piece in pieces:
            if piece:
                parts.append(piece)
            if slices.due():
                slices.stop()
                if parts:
                    yield b"".join(parts)
                    parts = []
                await slices.start()
    finally:
        slices.stop()
    if parts:
        yield b"".join(parts)
