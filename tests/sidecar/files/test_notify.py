"""The watcher's step schedule: a small step while events flow, a large one at rest."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from sidecar.files.notify import DEBOUNCE_MS, StepSchedule, change_batches
from tests.helpers import wait_for, write_atomic


def test_the_schedule_is_cold_at_rest_and_hot_after_an_event() -> None:
    schedule = StepSchedule(hot_step_ms=1, cold_step_ms=25, hot_seconds=2.0)
    assert schedule.watch(now=100.0) == (25, 25, 0)  # cold: waits for an event, however long
    schedule.event(now=100.0)
    assert schedule.watch(now=100.0) == (DEBOUNCE_MS, 1, 2000)  # hot: back after 2 s of quiet
    assert schedule.watch(now=101.9)[1] == 1
    assert schedule.watch(now=102.0) == (25, 25, 0)  # 2 s of quiet: cold again


class RecordingSchedule(StepSchedule):
    """The real schedule, which also keeps each watch's step."""

    def __init__(self, **kwargs: float) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.steps: list[int] = []

    def watch(self, now: float) -> tuple[int, int, int]:
        watch = super().watch(now)
        self.steps.append(watch[1])
        return watch


async def test_the_real_watcher_switches_from_cold_to_hot_and_back(tmp_path: Path) -> None:
    schedule = RecordingSchedule(hot_step_ms=1, cold_step_ms=30, hot_seconds=0.3)
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
        cold_again = len(schedule.steps)
        # 0.3 s without an event: the hot watch times out and the cold step comes back.
        await wait_for(lambda: schedule.steps[cold_again:].count(30) >= 1, what="cold again")
        assert schedule.steps[0] == 30 and schedule.steps[1] == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
