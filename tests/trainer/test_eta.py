"""trainer.eta: the arithmetic of progress.json's figures, with a clock of the test's own."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainer.eta import (
    Pace,
    current_epoch,
    eta_seconds,
    moving_average,
    percent_done,
    significant,
    whole,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_moving_average_starts_at_its_first_sample_then_leans_a_tenth_to_each_new_one() -> None:
    assert moving_average(None, 2.0) == 2.0
    assert moving_average(10.0, 20.0) == pytest.approx(11.0)


@pytest.mark.parametrize(
    ("step", "total", "percent"),
    [(3, 12, 25.0), (1, 3, 33.33), (12, 12, 100.0), (13, 12, 100.0), (5, 0, None)],
)
def test_percent_done(step: int, total: int, percent: float | None) -> None:
    assert percent_done(step, total) == percent


@given(step=st.integers(0, 10**9), total=st.integers(0, 10**9))
def test_percent_done_is_within_0_and_100_or_none(step: int, total: int) -> None:
    percent = percent_done(step, total)
    assert percent is None if total == 0 else 0 <= percent <= 100


def test_eta_is_the_steps_left_at_the_mean_step_time() -> None:
    assert eta_seconds(elapsed=10.0, steps_done=5, steps_left=10) == 20.0
    assert eta_seconds(elapsed=1.0, steps_done=3, steps_left=1) == 0.3  # to 0.1 s
    assert eta_seconds(elapsed=10.0, steps_done=5, steps_left=-2) == 0  # past the plan
    assert eta_seconds(elapsed=10.0, steps_done=0, steps_left=10) is None  # no step yet


@pytest.mark.parametrize(
    ("epoch", "total", "current"),
    [(0.0, 3, 1), (2.9, 3, 3), (3.0, 3, 3), (0.0, 0, 0), (1.2, None, 2), (2.3, 2.5, 2.5)],
)
def test_current_epoch_is_one_based_and_never_past_the_total(
    epoch: float, total: float | None, current: float
) -> None:
    assert current_epoch(epoch, total) == current


@pytest.mark.parametrize("epoch", [None, math.nan, math.inf])
def test_an_epoch_that_is_not_a_number_has_no_current_epoch(epoch: float | None) -> None:
    assert current_epoch(epoch, 3) is None


def test_significant_shortens_floats_only() -> None:
    assert significant(0.123456789) == 0.123457
    assert significant(123456789.0) == 123457000.0
    assert [significant(v) for v in (0.0, 7, "x", None)] == [0.0, 7, "x", None]
    assert math.isnan(significant(math.nan))


def test_whole_numbers_lose_their_point() -> None:
    assert (whole(3.0), type(whole(3.0))) == (3, int)
    assert whole(2.5) == 2.5


def test_pace_figures_from_the_steps_it_has_seen() -> None:
    """Steps of 2 s, 8 samples each: at step 5 of 10, half done, 4 samples/s, 10 s left."""
    clock = Clock()
    pace = Pace(clock=clock)
    assert pace.figures(step=0, total=10, epoch=None, total_epochs=1) == {
        "current_step": 0,
        "progress": 0.0,
    }
    pace.begin(step=0, samples_per_step=8)
    for _ in range(5):
        clock.now += 2
        pace.step_ended()
    assert pace.figures(step=5, total=10, epoch=0.5, total_epochs=1) == {
        "current_step": 5,
        "progress": 50.0,
        "current_epoch": 1,
        "samples_per_second": 4.0,
        "eta_seconds": 10.0,
    }


def test_a_resumed_run_counts_only_the_steps_since_it_began() -> None:
    clock = Clock()
    pace = Pace(clock=clock)
    pace.begin(step=100, samples_per_step=1)
    clock.now += 10
    assert pace.figures(step=110, total=200, epoch=None, total_epochs=None)["eta_seconds"] == 90.0


def test_a_run_past_its_plan_reports_the_steps_done_as_its_total() -> None:
    """transformers takes a step even with max_steps=0."""
    pace = Pace(clock=Clock())
    pace.begin(step=0, samples_per_step=1)
    assert pace.figures(step=1, total=0, epoch=0.0, total_epochs=0) == {
        "current_step": 1,
        "total_steps": 1,
        "progress": 100.0,
        "current_epoch": 0,
    }
