"""Log lines about what others wrote to Redis, at a bounded rate: whoever writes bad entries or
invents nodes must not fill the log (nor stall the loop writing it)."""

from __future__ import annotations

import logging
import math
import time
from typing import Final

INTERVAL: Final = 10.0
"""Seconds of one window."""
BURST: Final = 5
"""Lines said in full per window; the rest are counted, and said in one line after."""


class RateLimitedLog:
    """At most ``burst`` lines every ``interval`` seconds; the lines left out are counted and
    said in one line at the next line once the window is over."""

    def __init__(
        self, logger: logging.Logger, *, interval: float = INTERVAL, burst: int = BURST
    ) -> None:
        self.logger = logger
        self.interval, self.burst = interval, burst
        self._window = -math.inf
        self._said = self._left_out = 0

    def __call__(self, level: int, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._window >= self.interval:
            if self._left_out:
                self.logger.warning(
                    "bus: %d more lines like the last were left out (at most %d every %g s)",
                    self._left_out,
                    self.burst,
                    self.interval,
                )
            self._window, self._said, self._left_out = now, 0, 0
        if self._said < self.burst:
            self._said += 1
            self.logger.log(level, message, *args)
        else:
            self._left_out += 1


class Drops:
    """Entries dropped as not this protocol's: counted (``/metrics``), and logged at a bounded
    rate, naming the node and the reason."""

    def __init__(self, logger: logging.Logger) -> None:
        self.count = 0
        self._log = RateLimitedLog(logger)

    def __call__(self, node: str, reason: object, *, count: int = 1) -> None:
        self.count += count
        self._log(
            logging.WARNING,
            "bus: node %s: dropped %s not this protocol's: %s (%d dropped in all)",
            node,
            "an entry" if count == 1 else f"{count} entries",
            reason,
            self.count,
        )
