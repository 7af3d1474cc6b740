"""When a client connects again: a crowd that a sidecar's 1001 dropped at once comes back
spread over a second; any other drop waits the usual backoff."""

from __future__ import annotations

import statistics

from sidecar.clients.reconnection import RESTART_SPREAD, Reconnection
from sidecar.core.backoff import Backoff
from sidecar.core.protocol import CloseCode

CROWD = 2000


def first_pauses(code: int | None) -> list[float]:
    pauses = []
    for _ in range(CROWD):
        retry = Reconnection("ws://x", give_up_after=None, backoff=Backoff(), clock=lambda: 0.0)
        pauses.append(retry.pause(code, "dropped", contact=True))
    return pauses


def test_a_crowd_dropped_by_a_restart_comes_back_spread_over_a_second() -> None:
    pauses = first_pauses(CloseCode.GOING_AWAY)
    assert min(pauses) >= 0 and max(pauses) <= RESTART_SPREAD
    # Spread evenly: each tenth of the second gets about a tenth of the crowd.
    tenths = [sum(int(p * 10) == t for p in pauses) for t in range(10)]
    assert min(tenths) > CROWD / 10 * 0.6, tenths
    assert 0.4 < statistics.median(pauses) < 0.6


def test_other_drops_and_later_tries_keep_the_backoff() -> None:
    assert all(0.05 <= p <= 0.1 for p in first_pauses(None))  # none opened
    assert all(0.05 <= p <= 0.1 for p in first_pauses(1006))
    retry = Reconnection("ws://x", give_up_after=None, backoff=Backoff(), clock=lambda: 0.0)
    retry.pause(CloseCode.GOING_AWAY, "restart", contact=True)
    # The sidecar is not back yet: the next tries double as usual.
    assert 0.1 <= retry.pause(None, "refused", contact=False) <= 0.2
    assert 0.2 <= retry.pause(None, "refused", contact=False) <= 0.4
