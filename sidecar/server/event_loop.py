"""The event loop the sidecar runs on: uvloop when it is installed (the ``fast`` extra), else
asyncio's own. docs/benchmarks.md has the trial behind that choice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

CHOICES: Final = ("auto", "asyncio", "uvloop")
FAST_EXTRA_HINT: Final = "pip install 'progress-sidecar[fast]'"


class LoopUnavailable(RuntimeError):
    """The loop asked for is not installed."""


def loop_factory(choice: str) -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """The loop's name and the factory for ``asyncio.Runner`` (None: asyncio's default).

    Args:
        choice: ``auto`` (uvloop if installed), ``asyncio`` or ``uvloop``.

    Raises:
        LoopUnavailable: ``uvloop`` was asked for and is not installed.
    """
    if choice == "asyncio":
        return "asyncio", None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise LoopUnavailable(f"--event-loop uvloop needs uvloop: {FAST_EXTRA_HINT}") from None
        return "asyncio", None
    return "uvloop", uvloop.new_event_loop
