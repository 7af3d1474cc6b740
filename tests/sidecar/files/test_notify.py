"""The watcher's step schedule: a small step while events flow, a large one at rest."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from sidecar.files.notify import DEBOUNCE_MS, StepSchedule, change_batches
from tests.helpers import wait_for, write_atomic


def test_the_schedule_is_cold_at_rest_hot_after_an_event_then_warm() -> None:
    schedule = StepSchedule(hot_step_ms=1, warm_seconds=60.0)
    assert schedule.watch(now=100.0) == (25, 25, 0)  # cold: waits for an event, however long
    schedule.event(now=100.0)
    assert schedule.watch(now=100.0) == (DEBOUNCE_MS, 1, 2000)  # hot: back when it ends
    assert schedule.watch(now=101.5) == (DEBOUNCE_MS, 1, 500)
    # Warm until a minute of quiet; a batch is never cut shorter than its step.
    assert schedule.watch(now=102.0) == (3, 3, 58000)
    assert schedule.watch(now=159.9)[1] == 3
    assert schedule.watch(now=160.0) == (25, 25, 0)  # a minute of quiet: at rest


def test_no_warm_step_goes_from_hot_to_cold() -> None:
    schedule = StepSchedule(hot_step_ms=2, warm_seconds=0)
    schedule.event(now=0.0)
    assert schedule.watch(now=1.0)[1] == 2
    assert schedule.watch(now=2.0)[1] == 25


class RecordingSchedule(StepSchedule):
    """The real schedule, which also keeps each watch's step."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.steps: list[int] = []

    def watch(self, now: float) -> tuple[int, int, int]:
        watch = super().watch(now)
        self.steps.append(watch[1])
        return watch


async def test_the_real_watcher_switches_from_cold_to_hot_and_back(tmp_path: Path) -> None:
    schedule = RecordingSchedule(
        hot_step_ms=1, warm_seconds=0.6, warm_step_ms=4, cold_step_ms=30, hot_seconds=0.3
    )
    stop = threading.Event()
    batches: list[set[str]] = []

    async def watch() -> None:
        async for batch in change_batches(str(tmp_path), stop, schedule):
            batches.append(batch)

    task = asyncio.create_task(watch())
    try:
        await wait_for(lambda: schedule.steps == [30], what="a first, cold watch")
        write_atomic(tmp_path / "job" / "progress.json", {"status": "running"})
        await wait_for(lambda: bool(batches), what="the write's batch")
        await wait_for(lambda: 1 in schedule.steps, what="a hot watch after the event")
        # Without another event, each watch times out when its step's time is up.
        await wait_for(lambda: 4 in schedule.steps, what="warm after 0.3 s")
        await wait_for(lambda: schedule.steps[-1] == 30, what="cold again after 0.6 s")
        assert schedule.steps[0] == 30 and schedule.steps[1] == 1
        tiers = [step for i, step in enumerate(schedule.steps) if schedule.steps[i - 1] != step]
        assert tiers[-3:] == [1, 4, 30]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
