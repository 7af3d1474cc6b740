"""``Throttle``: at most one write per interval; the latest state offered sooner is held."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Throttle(Generic[T]):
    """Decides whether an offered item goes out now, and holds the latest one that may not.

    Args:
        min_interval: seconds between two items that go out.
        clock: a monotonic clock, for tests.
    """

    def __init__(self, min_interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval = min_interval
        self._clock = clock
        self._last: float | None = None
        self.held: T | None = None
        """The latest item offered too soon, until one goes out."""

    def due(self) -> bool:
        """Whether an item offered now would go out (so callers may skip building one)."""
        return self._last is None or self._clock() - self._last >= self.min_interval

    def offer(self, item: T, *, now: bool = False) -> bool:
        """Returns whether ``item`` goes out now (the first, a due one, or any with ``now``):
        the interval then starts again and nothing is held. Otherwise ``item`` is held."""
        if not (now or self.due()):
            self.held = item
            return False
        self.held = None
        self._last = self._clock()
        return True
