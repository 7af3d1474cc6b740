"""The histories nobody follows, released; and the memory they held, given back to the system.

The hub decides which histories go (``HistoryStore.release_idle``, by its budget); this
clock asks it once a second, and after a release asks the C library to return the pages freed
(CPython keeps small objects in arenas it frees by itself, but glibc keeps what ``free`` gave
back in its heap until asked: ``malloc_trim``).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import sys
import time
from collections.abc import Callable

from sidecar.core.hub import JobHub

logger = logging.getLogger(__name__)


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``; None on another C library or system."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return None
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (ValueError, OSError, AttributeError):
        return None
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def give_back_memory() -> float:
    """Return the C heap's free pages to the system (glibc only); the seconds it took."""
    began = time.perf_counter()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
    return time.perf_counter() - began


def release_interval(grace: float) -> float:
    """How often to look: at most a quarter of the grace late, at most once a second."""
    return max(0.05, min(1.0, grace / 4))


async def run_history_release(hub: JobHub) -> None:
    """Release the histories nobody follows as their grace ends, until cancelled; after any
    release (this one's, or the budget's), give the freed memory back."""
    budget = hub.histories.budget
    released = budget.released
    while True:
        await asyncio.sleep(release_interval(budget.grace))
        hub.histories.release_idle()
        if budget.released != released:
            count, released = budget.released - released, budget.released
            took = give_back_memory()
            logger.debug(
                "released %d histories nobody follows; malloc_trim took %.1f ms", count, took * 1e3
            )
