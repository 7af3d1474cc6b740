"""Batches of changed paths under a directory, from inotify through watchfiles' Rust core.

watchfiles' ``awatch`` polls its event queue every ``step`` ms, awake even when nothing happens:
a small step is fast but costs idle CPU. This loop drives the same core (``RustNotify``, which
watchfiles documents for direct use) with a small step while events flow and a larger one after
``hot_seconds`` of quiet, so the sidecar is both quick and nearly free at rest.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from watchfiles._rust_notify import RustNotify

DEFAULT_HOT_STEP_MS = 1
COLD_STEP_MS = 25
HOT_SECONDS = 2.0
DEBOUNCE_MS = 5


class StepSchedule:
    """How long each watch lasts: a small step while events flow, a larger one after
    ``hot_seconds`` of quiet. Pure: the caller says when events came and what time it is.

    Args:
        hot_step_ms: the quiet time that ends a batch while events flow.
        cold_step_ms: the same after ``hot_seconds`` without an event (the first event after
            a quiet spell waits up to this long).
        hot_seconds: how long after an event the hot step stays.
    """

    def __init__(
        self,
        hot_step_ms: int = DEFAULT_HOT_STEP_MS,
        cold_step_ms: int = COLD_STEP_MS,
        hot_seconds: float = HOT_SECONDS,
    ) -> None:
        self.hot_step_ms = hot_step_ms
        self.cold_step_ms = cold_step_ms
        self.hot_seconds = hot_seconds
        self._last_event = -float("inf")

    def event(self, now: float) -> None:
        """Events came at ``now`` (monotonic)."""
        self._last_event = now

    def watch(self, now: float) -> tuple[int, int, int]:
        """The next watch's ``(debounce_ms, step_ms, timeout_ms)``: while hot, it comes back
        after ``hot_seconds`` of quiet, so that the cold step can take over."""
        hot = now - self._last_event < self.hot_seconds
        step = self.hot_step_ms if hot else self.cold_step_ms
        timeout = int(self.hot_seconds * 1000) if hot else 0
        return max(DEBOUNCE_MS, step), step, timeout


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
    """
    schedule = schedule or StepSchedule()
    loop = asyncio.get_running_loop()
    # One thread of its own: watch() blocks it for as long as nothing happens.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sidecar-inotify") as executor:
        notify = RustNotify([root], False, False, 0, True, True)
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
                if isinstance(result, set):
                    schedule.event(time.monotonic())
                    yield {path for _change, path in result}
                elif result == "stop":
                    return
        finally:
            stop.set()
            notify.close()
