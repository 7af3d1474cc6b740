"""The backoff's own count of failures: ``next`` and ``reset``."""

from __future__ import annotations

import random

import pytest

from sidecar.core.backoff import Backoff


def test_next_doubles_to_the_cap_and_reset_starts_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda a, b: b)
    backoff = Backoff(base=0.1, cap=0.5)
    assert [backoff.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert backoff.failures == 5
    backoff.reset()
    assert (backoff.failures, backoff.next()) == (0, 0.1)


def test_next_is_never_below_half_its_turn() -> None:
    """Half of each pause is fixed: many clients never retry in a tight loop."""
    backoff = Backoff(base=0.1, cap=5.0)
    pauses = [backoff.next() for _ in range(12)]
    turns = [min(5.0, 0.1 * 2**n) for n in range(12)]
    assert all(turn / 2 <= pause <= turn for pause, turn in zip(pauses, turns, strict=True))


def test_a_huge_failure_count_gives_the_cap() -> None:
    assert 2.5 <= Backoff(base=0.1, cap=5.0).compute(10**6) <= 5.0
