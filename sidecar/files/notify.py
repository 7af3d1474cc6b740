"""Batches of changed paths under a directory, from inotify through watchfiles' Rust core.

watchfiles' Rust loop polls its event queue every ``step`` ms, awake even when nothing happens,
and hands a batch over one quiet step after it saw the first event: a write waits between one
and two steps. A small step is fast but costs CPU (taking the GIL each step). This loop drives
that core (``RustNotify``, which watchfiles documents for direct use) on a schedule of three
steps: hot (1 ms) while events flow, warm (3 ms) for a minute after the last one, so that a
trainer that writes every few seconds is served within a few ms, and cold (25 ms) at rest.
docs/benchmarks.md has the curve and the costs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from watchfiles._rust_notify import RustNotify

DEFAULT_HOT_STEP_MS = 1
WARM_STEP_MS = 3
COLD_STEP_MS = 25
HOT_SECONDS = 2.0
DEFAULT_WARM_SECONDS = 60.0
DEBOUNCE_MS = 2


class StepSchedule:
    """How long each watch's step is: hot while events flow, warm for ``warm_seconds`` after
    the last event, cold after that. Pure: the caller says when events came and what time it is.

    Args:
        hot_step_ms: the step while events flow (``hot_seconds`` after an event).
        warm_seconds: how long after an event the warm step stays (0: none, hot then cold).
        warm_step_ms: the step then.
        cold_step_ms: the step at rest.
        hot_seconds: how long after an event the hot step stays.
    """

    def __init__(
        self,
        hot_step_ms: int = DEFAULT_HOT_STEP_MS,
        warm_seconds: float = DEFAULT_WARM_SECONDS,
        *,
        warm_step_ms: int = WARM_STEP_MS,
        cold_step_ms: int = COLD_STEP_MS,
        hot_seconds: float = HOT_SECONDS,
    ) -> None:
        self.tiers = [(hot_seconds, hot_step_ms), (max(hot_seconds, warm_seconds), warm_step_ms)]
        self.cold_step_ms = cold_step_ms
        self._last_event = -float("inf")

    def event(self, now: float) -> None:
        """Events came at ``now`` (monotonic)."""
        self._last_event = now

    def watch(self, now: float) -> tuple[int, int, int]:
        """The next watch's ``(debounce_ms, step_ms, timeout_ms)``: a watch with a step that
        lasts only so long comes back (times out) when it ends, so that the next step takes
        over."""
        quiet = now - self._last_event
        for until, step in self.tiers:
            if quiet < until:
                return max(DEBOUNCE_MS, step), step, max(1, int((until - quiet) * 1000))
        return max(DEBOUNCE_MS, self.cold_step_ms), self.cold_step_ms, 0


class UndecodablePath(RuntimeError):
    """watchfiles' core met a path under the root whose name is not UTF-8 (any byte string is a
    valid Linux file name): it cannot hand that path over, and from then on it hands nothing
    over (every later watch raises the same). A fresh one fails at once while a directory of
    such a name lies under the root."""


def _undecodable(error: RuntimeError) -> bool:
    return str(error).startswith("Unable to decode path")


def inotify_blocked(root: str) -> str | None:
    """Why a fresh watch of ``root`` fails at once (an ``UndecodablePath``), or None when it
    does not. Blocks for a few ms: call it in a thread."""
    notify = RustNotify([root], False, False, 0, True, True)
    try:
        notify.watch(DEBOUNCE_MS, 1, 5, threading.Event())
    except RuntimeError as e:
        if _undecodable(e):
            return str(e)
        raise
    finally:
        notify.close()
    return None


async def change_batches(
    root: str, stop: threading.Event, schedule: StepSchedule | None = None
) -> AsyncIterator[set[str]]:
    """Yield the paths changed under ``root``, a batch at a time, until ``stop`` is set.

    Args:
        root: the directory, watched recursively; it must exist.
        stop: set it (from any thread) to end the iteration within a step.
        schedule: the steps of the watches (``StepSchedule()`` by default).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        UndecodablePath: a path under ``root`` has a name that is not UTF-8.
    """
    schedule = schedule or StepSchedule()
    loop = asyncio.get_running_loop()
    # One thread of its own: watch() blocks it for as long as nothing happens.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sidecar-inotify") as executor:
        # Not on the event loop: the recursive watch is set up by walking the tree, and the
        # walk follows symbolic links (a link to / under the root takes many seconds).
        notify = await loop.run_in_executor(
            executor, lambda: RustNotify([root], False, False, 0, True, True)
        )
        try:
            while not stop.is_set():
                debounce, step, timeout = schedule.watch(time.monotonic())
                pending = loop.run_in_executor(
                    executor, notify.watch, debounce, step, timeout, stop
                )
                try:
                    result = await asyncio.shield(pending)
                except asyncio.CancelledError:
                    stop.set()
                    await asyncio.wait([pending])  # never close the notifier under watch()
                    raise
                except RuntimeError as e:
                    if _undecodable(e):
                        raise UndecodablePath(str(e)) from None
                    raise
                if isinstance(result, set):
                    schedule.event(time.monotonic())
                    yield {path for _change, path in result}
                elif result == "stop":
                    return
        finally:
            stop.set()
            notify.close()
