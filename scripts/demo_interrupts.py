"""Ctrl-C and SIGTERM while the demo runs: they end its serving, or cancel it while it starts;
either way it stops what it started before it exits."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable


class Interrupts:
    """SIGINT and SIGTERM (Ctrl-C, kill): while the demo serves, they end the serving (the demo
    then exits as it would have with --once); before that, they cancel the demo, which stops
    what it started and exits 128 + the signal's number. Later ones, and those that come while
    it stops what it started, are ignored: it is stopping already."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._stop = asyncio.Event()
        self._serving = False
        self._stopping = False
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._received, signum)

    def _received(self, signum: int) -> None:
        if self.signum is not None or self._stopping:
            return
        self.signum = signum
        if self._serving:
            self._stop.set()
        elif self._task is not None:
            self._task.cancel()

    async def serve(self) -> None:
        """Wait for Ctrl-C or SIGTERM."""
        self._serving = True
        await self._stop.wait()

    def stopping(self) -> None:
        """The demo stops what it started: a signal now would interrupt that."""
        self._stopping = True


async def interruptible(demo: Callable[[Interrupts], Awaitable[int]]) -> int:
    """``demo``'s exit status, or 128 + the signal's number when a signal cancelled it."""
    interrupts = Interrupts()
    try:
        return await demo(interrupts)
    except asyncio.CancelledError:
        if interrupts.signum is None:
            raise
        return 128 + interrupts.signum
