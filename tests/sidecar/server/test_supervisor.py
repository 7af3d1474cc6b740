"""No background task dies silently (issue 20): the supervisor restarts it with backoff, counts
it, and ``/healthz`` answers 503 naming it until it runs well again."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sidecar.core.hub import JobHub
from sidecar.files.layout import JobLayout
from sidecar.server.close_pacer import ClosePolicy
from sidecar.server.keys import HUB, SUPERVISOR
from sidecar.server.supervisor import Supervisor
from tests.conftest import Sidecar, StartSidecar
from tests.helpers import wait_for, write_atomic


class Injected(Exception):
    """The fault a test puts into a task."""


def failing_once(original: Callable[..., Any], faults: list[str]) -> Callable[..., Any]:
    """``original``, except that its first call raises ``Injected`` (and notes it)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not faults:
            faults.append("raised")
            raise Injected("injected by the test")
        return original(*args, **kwargs)

    return wrapper


async def test_supervisor_restarts_a_task_that_raises_and_reports_it_down_until_it_runs() -> None:
    supervisor = Supervisor(min_backoff=0.05, healthy_after=0.3)
    runs: list[int] = []

    async def work() -> None:
        runs.append(len(runs))
        if len(runs) <= 2:
            raise Injected(f"run {len(runs)}")
        await asyncio.Event().wait()

    supervisor.start("worker", work)
    await wait_for(lambda: "worker" in supervisor.down, what="down after the first failure")
    assert supervisor.down["worker"] == "crashed: Injected: run 1"
    await wait_for(lambda: len(runs) == 3, what="a third run")
    assert supervisor.down and supervisor.restarts["worker"] == 2
    await wait_for(lambda: not supervisor.down, what="up once it has run healthy_after")
    await supervisor.stop()
    assert supervisor.restarts["worker"] == 2


async def test_supervisor_restarts_a_task_that_returns() -> None:
    """A background task runs until cancelled: returning is a failure too."""
    supervisor = Supervisor(min_backoff=0.01, healthy_after=0.2)
    runs: list[None] = []

    async def work() -> None:
        runs.append(None)
        if len(runs) > 1:
            await asyncio.Event().wait()

    supervisor.start("short", work)
    await wait_for(lambda: len(runs) == 2, what="started again")
    assert supervisor.restarts["short"] == 1
    await supervisor.stop()


async def test_supervisor_backs_off_and_logs_the_traceback_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor(min_backoff=0.02, max_backoff=0.08, healthy_after=10)
    started: list[float] = []

    async def work() -> None:
        started.append(asyncio.get_running_loop().time())
        raise Injected("always")

    with caplog.at_level(logging.WARNING, logger="sidecar.server.supervisor"):
        supervisor.start("loop", work)
        await wait_for(lambda: len(started) >= 6, what="six runs")
        await supervisor.stop()
    gaps = [b - a for a, b in itertools.pairwise(started)]
    # Jittered between half and all of 0.02, 0.04, 0.08, 0.08...: never a tight loop.
    assert all(gap >= 0.009 for gap in gaps), gaps
    assert max(gaps[3:]) >= 0.039, gaps
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1 and "Injected: always" in caplog.text
    assert "background task loop crashed: Injected: always again" in caplog.text


async def test_supervisor_stop_cancels_and_does_not_restart() -> None:
    supervisor = Supervisor()
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    supervisor.start("task", work)
    await started.wait()
    await supervisor.stop()
    assert cancelled.is_set() and supervisor.restarts["task"] == 0


async def health(sidecar: Sidecar) -> tuple[int, dict[str, Any]]:
    return await sidecar.get_json("/healthz")


async def shows_down_then_up(sidecar: Sidecar, task: str) -> None:
    """``/healthz`` goes 503 ``degraded`` naming ``task``, then 200 again."""
    seen: list[tuple[int, dict[str, Any]]] = []

    async def down() -> bool:
        seen.append(await health(sidecar))
        return seen[-1][0] == 503

    await wait_for(down, what=f"/healthz 503 for {task}")
    body = seen[-1][1]
    assert body["status"] == "degraded"
    assert body["tasks_down"] == {task: "crashed: Injected: injected by the test"}

    async def up() -> bool:
        status, body = await health(sidecar)
        return status == 200 and body["status"] == "ok" and "tasks_down" not in body

    await wait_for(up, what=f"/healthz 200 after {task} restarted")
    async with sidecar.session.get(sidecar.url("/metrics")) as response:
        metrics = await response.text()
    assert f'sidecar_task_restarts_total{{task="{task}"}} 1.0' in metrics


async def updates_flow(sidecar: Sidecar, jobs_root: Path, step: int) -> None:
    write_atomic(jobs_root / "control" / "progress.json", {"status": "running", "current_step": 0})
    await wait_for(lambda: "control" in sidecar.app[HUB], what="the control job")
    client = await sidecar.connect("control")
    await client.until(lambda s: s["status"] == "running")
    write_atomic(
        jobs_root / "control" / "progress.json", {"status": "running", "current_step": step}
    )
    await client.until(lambda s: s.get("current_step") == step)


async def test_a_watcher_that_fails_is_restarted_and_updates_resume(
    start_sidecar: StartSidecar, jobs_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sidecar = await start_sidecar()
    await updates_flow(sidecar, jobs_root, 1)
    faults: list[str] = []
    monkeypatch.setattr(JobLayout, "role_of", failing_once(JobLayout.role_of, faults))
    write_atomic(jobs_root / "control" / "progress.json", {"status": "running", "current_step": 2})
    await shows_down_then_up(sidecar, "watcher")
    # The write that met the fault is caught up by the restarted watcher's first scan.
    status, body = await sidecar.get_json("/api/jobs/control")
    assert status == 200 and body["current_step"] == 2
    await updates_flow(sidecar, jobs_root, 3)
    write_atomic(jobs_root / "new-job" / "progress.json", {"status": "running"})
    await wait_for(lambda: "new-job" in sidecar.app[HUB], what="a new job listed")


async def test_a_stall_clock_that_fails_is_restarted_and_stalls_are_still_shown(
    start_sidecar: StartSidecar, jobs_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_atomic(jobs_root / "quiet" / "progress.json", {"status": "running"})
    sidecar = await start_sidecar(stall_after=1.5)
    faults: list[str] = []
    monkeypatch.setattr(JobHub, "sweep", failing_once(JobHub.sweep, faults))
    await shows_down_then_up(sidecar, "stall-clock")
    client = await sidecar.connect("quiet")
    state = await client.until(lambda s: s["stalled"] is True, timeout=5)
    assert state["stall_reason"] == "no update for 1.5 s"


async def test_a_close_pacer_that_fails_is_restarted_and_the_close_still_comes(
    start_sidecar: StartSidecar, jobs_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_atomic(jobs_root / "ending" / "progress.json", {"status": "running"})
    sidecar = await start_sidecar()
    client = await sidecar.connect("ending")
    await client.until(lambda s: s["status"] == "running")
    faults: list[str] = []
    monkeypatch.setattr(ClosePolicy, "delay", failing_once(ClosePolicy.delay, faults))
    write_atomic(jobs_root / "ending" / "progress.json", {"status": "completed"})
    await client.until(lambda s: s["complete"] is True)
    assert await client.closed(timeout=5) == 1000
    assert faults == ["raised"]
    await shows_down_then_up(sidecar, "close-pacer")


async def test_healthz_names_every_supervised_task(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar()
    names = set(sidecar.app[SUPERVISOR].names)
    assert {"close-pacer", "stall-clock", "watcher"} <= names
    status, body = await health(sidecar)
    assert status == 200 and "tasks_down" not in body
