"""The one backoff policy of the sidecar, its bus and its client: redis-py's equal jitter.

Each pause is ``min(cap, base * 2**failures)``, half of it fixed and half random: a retry never
comes sooner than half its turn (no tight loop), and retries of many clients spread over the
other half. It is redis-py's ``EqualJitterBackoff`` (``compute``, ``reset``), written again
here with the standard library alone: the single-node sidecar and the Python client run
without Redis' client installed.
"""

from __future__ import annotations

import math
import random
from typing import Final

MIN_BACKOFF: Final = 0.1
"""Seconds: the first pause is between half of this and all of it."""
MAX_BACKOFF: Final = 5.0
"""Seconds: no pause is longer."""


class Backoff:
    """Pauses between retries, doubling from ``base`` to ``cap``, each half jittered.

    ``compute(failures)`` is redis-py's ``EqualJitterBackoff.compute``; ``next()`` counts the
    failures itself (the first pause is ``compute(0)``: between ``base / 2`` and ``base``), and
    ``reset()`` starts the count over, after a success.

    Args:
        base: seconds the pauses double from.
        cap: the longest pause, in seconds.
    """

    __slots__ = ("base", "cap", "failures")

    def __init__(self, *, base: float = MIN_BACKOFF, cap: float = MAX_BACKOFF) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        """Failures since the last ``reset``: the pauses ``next`` has given."""

    def compute(self, failures: int) -> float:
        """The pause after ``failures`` failures, in seconds: half fixed, half random."""
        half = min(self.cap, _doubled(self.base, failures)) / 2
        return half + random.uniform(0, half)

    def next(self) -> float:
        """The pause before the next retry; counts one failure more."""
        pause = self.compute(self.failures)
        self.failures += 1
        return pause

    def reset(self) -> None:
        """Start over from ``base``: the last try succeeded."""
        self.failures = 0


def _doubled(base: float, failures: int) -> float:
    """``base * 2**failures``, or infinity once that is too large for a float (``ldexp``
    overflows only when the result does, as in redis-py)."""
    try:
        return math.ldexp(base, failures)
    except OverflowError:
        return math.inf
