"""The cyclic garbage collector's pauses, timed (``gc.callbacks``), for ``/metrics``.

Each collection holds the event loop, and every client with it: its count, its time by
generation and the longest one show whether the collector is what makes a slow tick.
"""

from __future__ import annotations

import gc
import time
from typing import Any, Final

GENERATIONS: Final = (0, 1, 2)


class GcPauses:
    """Collections and their pauses since ``start``, by generation."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.longest = 0.0
        """The longest pause, in seconds."""
        self._began = 0.0

    def start(self) -> None:
        gc.callbacks.append(self._on_collection)

    def stop(self) -> None:
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        pause = time.perf_counter() - self._began
        generation = info["generation"]
        self.collections[generation] += 1
        self.seconds[generation] += pause
        self.longest = max(self.longest, pause)
