"""The one backoff policy (``sidecar.core.backoff``) is redis-py's ``EqualJitterBackoff``."""

from __future__ import annotations

import random

import pytest
from redis.backoff import EqualJitterBackoff

from sidecar.core.backoff import MAX_BACKOFF, MIN_BACKOFF, Backoff

FAILURES = [0, 1, 2, 3, 5, 6, 7, 10, 100, 5000]


@pytest.mark.parametrize("end", ["low", "high"])
def test_backoff_equals_redis_equal_jitter_at_both_ends_of_the_jitter(
    end: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the random draw pinned to its lowest, then its highest, value, both give the same
    pause for every failure count (past the cap, and past a float's range, too)."""
    monkeypatch.setattr(random, "uniform", lambda a, b: a if end == "low" else b)
    ours = Backoff(base=MIN_BACKOFF, cap=MAX_BACKOFF)
    theirs = EqualJitterBackoff(cap=MAX_BACKOFF, base=MIN_BACKOFF)
    pauses = [ours.compute(n) for n in FAILURES]
    assert pauses == [theirs.compute(n) for n in FAILURES]
    if end == "low":
        assert pauses[:3] == [0.05, 0.1, 0.2] and pauses[-1] == MAX_BACKOFF / 2
    else:
        assert pauses[:3] == [0.1, 0.2, 0.4] and pauses[-1] == MAX_BACKOFF


def test_backoff_draws_within_redis_bounds() -> None:
    """Unpinned, every pause lies where redis-py's may: between half and all of its turn."""
    ours = Backoff(base=0.02, cap=0.3)
    for n in FAILURES:
        turn = min(0.3, 0.02 * 2**n) if n < 100 else 0.3
        for _ in range(50):
            assert turn / 2 <= ours.compute(n) <= turn
