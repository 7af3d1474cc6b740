"""The closes that follow jobs' ends wait for a quiet hub, and go one at a time."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from sidecar.server.close_pacer import ClosePacer, ClosePolicy
from tests.helpers import wait_for

POLICY = ClosePolicy(quiet=0.002, max_wait=0.5, spacing=0.001)


def test_policy_waits_until_the_hub_is_quiet() -> None:
    assert POLICY.delay(now=10.0, last_change=9.9995, oldest=9.99) == pytest.approx(0.0015)


def test_policy_releases_at_once_when_the_hub_is_quiet() -> None:
    assert POLICY.delay(now=10.0, last_change=9.0, oldest=10.0) == 0


def test_policy_never_holds_a_close_past_max_wait() -> None:
    """A hub that never goes quiet (writes every ms) still gets its closes done."""
    assert POLICY.delay(now=10.5, last_change=10.5, oldest=10.0) == 0
    assert POLICY.delay(now=10.499, last_change=10.499, oldest=10.0) == pytest.approx(0.001)


async def test_pacer_wakes_in_order_one_at_a_time() -> None:
    pacer = ClosePacer(lambda: 0.0, policy=ClosePolicy(spacing=0.02))
    woken: list[tuple[int, float]] = []
    for i in range(5):
        pacer.later(lambda i=i: woken.append((i, time.monotonic())))
    task = asyncio.create_task(pacer.run())
    try:
        await wait_for(lambda: len(woken) == 5, what="every close's turn")
        assert [i for i, _at in woken] == list(range(5))
        gaps = [b - a for (_i, a), (_j, b) in itertools.pairwise(woken)]
        assert min(gaps) >= 0.02 * 0.9, gaps  # the loop's timers are about a ms coarse
        assert len(pacer) == 0
    finally:
        task.cancel()
        await asyncio.wait([task])


async def test_pacer_holds_closes_while_the_hub_changes() -> None:
    busy = [True]
    looks = [0]

    def last_change() -> float:
        looks[0] += 1
        return time.monotonic() if busy[0] else 0.0

    pacer = ClosePacer(last_change, policy=ClosePolicy(quiet=0.01, max_wait=30))
    woken: list[int] = []
    pacer.later(lambda: woken.append(1))
    task = asyncio.create_task(pacer.run())
    try:
        # The pacer looks at the hub again after each pause: five looks, five holds.
        await wait_for(lambda: looks[0] >= 5 or bool(woken), what="five looks at the hub")
        assert woken == []  # the hub made a version "just now" at every look
        busy[0] = False
        await wait_for(lambda: woken == [1], what="the close once the hub is quiet")
    finally:
        task.cancel()
        await asyncio.wait([task])
