"""A run's pace in numbers: progress, epoch, throughput and ETA. Pure arithmetic, no I/O.

``Pace`` keeps the times it needs from a clock of its own (``time.monotonic`` by default, a
fake one in tests); ``figures`` turns a step count into progress.json's fields.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

STEP_TIME_WEIGHT = 0.1
"""The weight of the latest step in the moving average of the step time."""


def moving_average(
    average: float | None, sample: float, *, weight: float = STEP_TIME_WEIGHT
) -> float:
    """The next exponential moving average: ``sample`` alone when there is none yet."""
    return sample if average is None else (1 - weight) * average + weight * sample


def percent_done(step: int, total: int) -> float | None:
    """``step / total`` as a percentage with 2 decimals, at most 100; None without a total."""
    return round(min(100.0, 100.0 * step / total), 2) if total else None


def eta_seconds(*, elapsed: float, steps_done: int, steps_left: int) -> float | None:
    """Remaining steps times the mean step time so far; None before the first step."""
    if steps_done <= 0:
        return None
    return round(elapsed / steps_done * max(0, steps_left), 1)


def current_epoch(epoch: float | None, total_epochs: int | float | None) -> int | float | None:
    """The epoch under way, 1-based, never past the total (a run of 0 epochs is at epoch 0)."""
    if epoch is None or not math.isfinite(epoch):
        return None
    current = int(epoch) + 1
    return current if total_epochs is None else min(current, total_epochs)


def significant(value: Any, digits: int = 6) -> Any:
    """Floats to ``digits`` significant digits: enough to show, and short on the wire (the
    full values are in metrics.jsonl); anything else as it is."""
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return float(f"{value:.{digits}g}")
    return value


def whole(value: float) -> int | float:
    """``3.0`` as ``3``; a fraction as it is."""
    return int(value) if float(value).is_integer() else value


class Pace:
    """The times of one run: since it began (for the ETA) and of recent steps (for throughput).

    Args:
        clock: a monotonic clock, for tests.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._began: float | None = None
        self._steps_at_begin = 0
        self._samples_per_step = 1
        self._last_step: float | None = None
        self.step_seconds: float | None = None
        """The moving average of the time a step takes."""

    def begin(self, *, step: int, samples_per_step: int) -> None:
        """The run (or a resumed one, at ``step``) begins now."""
        self._began = self._last_step = self._clock()
        self._steps_at_begin = step
        self._samples_per_step = samples_per_step

    def step_ended(self) -> None:
        """A step ended now."""
        now = self._clock()
        if self._last_step is not None:
            self.step_seconds = moving_average(self.step_seconds, now - self._last_step)
        self._last_step = now

    def figures(
        self, *, step: int, total: int, epoch: float | None, total_epochs: int | float | None
    ) -> dict[str, Any]:
        """progress.json's figures at ``step`` of ``total``: a run past its plan (transformers
        takes a step even with ``max_steps=0``) reports the steps done as its total."""
        fields: dict[str, Any] = {"current_step": step, "progress": percent_done(step, total)}
        if step > total:
            fields.update(total_steps=step, progress=100.0)
        epoch_now = current_epoch(epoch, total_epochs)
        if epoch_now is not None:
            fields["current_epoch"] = epoch_now
        if self.step_seconds:
            fields["samples_per_second"] = round(self._samples_per_step / self.step_seconds, 2)
        if self._began is not None and total:
            eta = eta_seconds(
                elapsed=self._clock() - self._began,
                steps_done=step - self._steps_at_begin,
                steps_left=total - step,
            )
            if eta is not None:
                fields["eta_seconds"] = eta
        return fields
