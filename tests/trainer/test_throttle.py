"""trainer.throttle: one item per interval, the latest held, with a clock of the test's own."""

from __future__ import annotations

from trainer.throttle import Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_goes_out_then_one_per_interval_and_the_latest_is_held() -> None:
    clock = Clock()
    throttle: Throttle[int] = Throttle(0.5, clock=clock)
    assert throttle.offer(1)
    assert not throttle.due()
    assert not throttle.offer(2)
    assert not throttle.offer(3)
    assert throttle.held == 3
    clock.now += 0.5
    assert throttle.due()
    assert throttle.offer(4)
    assert throttle.held is None


def test_now_goes_out_whatever_the_interval_and_starts_it_again() -> None:
    clock = Clock()
    throttle: Throttle[str] = Throttle(60, clock=clock)
    assert throttle.offer("first")
    assert not throttle.offer("held")
    assert throttle.offer("final", now=True)
    assert throttle.held is None
    clock.now += 59
    assert not throttle.due()
