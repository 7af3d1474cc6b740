"""Every background task under one supervisor, as OTP's supervisors keep Erlang processes.

A task that raises, or ends when it should run for ever, is logged (with its traceback the
first time it fails that way), counted, and started again after a backoff that doubles from
``MIN_BACKOFF`` to ``MAX_BACKOFF`` (``sidecar.core.backoff``: half of each pause jittered) and
starts over once the task has run well for ``HEALTHY_AFTER`` seconds. From its failure until
it has run that long again, the task is ``down``: ``/healthz`` answers 503 and names it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from sidecar.core.backoff import MAX_BACKOFF, MIN_BACKOFF, Backoff

logger = logging.getLogger(__name__)

Work = Callable[[], Awaitable[None]]
"""A background task's body: runs until cancelled (returning is a failure too)."""

HEALTHY_AFTER: Final = 1.0
"""Seconds a restarted task must run before it counts as up again (and its backoff resets)."""


class Supervisor:
    """Runs named background tasks, restarting each when it fails.

    Args:
        min_backoff: seconds before the first restart.
        max_backoff: the longest pause between two restarts.
        healthy_after: seconds a task must run to count as up again.
    """

    def __init__(
        self,
        *,
        min_backoff: float = MIN_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        healthy_after: float = HEALTHY_AFTER,
    ) -> None:
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.healthy_after = healthy_after
        self.restarts: collections.Counter[str] = collections.Counter()
        """Restarts of each task since the start."""
        self._down: dict[str, str] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._said: set[tuple[str, str]] = set()

    @property
    def down(self) -> dict[str, str]:
        """The tasks that are down now, with why."""
        return dict(self._down)

    @property
    def names(self) -> list[str]:
        return list(self._tasks)

    def start(self, name: str, work: Work) -> None:
        """Run ``work`` as the task ``name``, for as long as the supervisor runs."""
        if name in self._tasks:
            raise ValueError(f"a task named {name} runs already")
        self._tasks[name] = asyncio.create_task(self._keep(name, work), name=name)

    async def stop(self) -> None:
        """Cancel every task and wait for each to end."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._tasks.clear()

    async def _keep(self, name: str, work: Work) -> None:
        backoff = Backoff(base=self.min_backoff, cap=self.max_backoff)
        while True:
            began = time.monotonic()
            error = await self._run_once(name, work)
            if time.monotonic() - began >= self.healthy_after:
                backoff.reset()  # it ran well for a while: this is a new failure
            self.restarts[name] += 1
            pause = backoff.next()
            self._down[name] = reason = _reason(error)
            self._report(name, error, reason, pause)
            await asyncio.sleep(pause)

    async def _run_once(self, name: str, work: Work) -> BaseException | None:
        """Run the task until it fails; returns what it raised (None: it returned)."""
        task = asyncio.ensure_future(work())
        try:
            if name in self._down:
                done, _ = await asyncio.wait({task}, timeout=self.healthy_after)
                if not done:
                    del self._down[name]
                    logger.info("background task %s is up again", name)
            await task
        except asyncio.CancelledError:
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
                raise
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise
            # The task cancelled itself (a bug): a failure like any other.
            return asyncio.CancelledError()
        except Exception as e:
            return e
        return None

    def _report(self, name: str, error: BaseException | None, what: str, pause: float) -> None:
        key = (name, type(error).__name__)
        if key not in self._said:
            self._said.add(key)
            logger.error(
                "background task %s %s; restarting it in %.1f s (restart %d)",
                name,
                what,
                pause,
                self.restarts[name],
                exc_info=error if isinstance(error, Exception) else None,
            )
        else:
            logger.warning(
                "background task %s %s again; restarting it in %.1f s (restart %d)",
                name,
                what,
                pause,
                self.restarts[name],
            )


def _reason(error: BaseException | None) -> str:
    if error is None:
        return "ended"
    text = str(error)
    if len(text) > 200:
        text = text[:197] + "..."
    return (
        f"crashed: {type(error).__name__}: {text}" if text else f"crashed: {type(error).__name__}"
    )
