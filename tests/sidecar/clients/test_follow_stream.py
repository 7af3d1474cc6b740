"""The Python client following a job on a real sidecar: to the end, across a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from scripts.support.ports import free_port
from sidecar.clients.follow import follow_job
from sidecar.server.app import create_app
from sidecar.server.settings import Settings
from tests.conftest import StartSidecar
from tests.helpers import wait_for, write_atomic


async def test_follow_to_completion_with_history(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    job = jobs_root / "j"
    write_atomic(job / "progress.json", {"status": "running", "current_step": 1})
    (job / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    sidecar = await start_sidecar()
    logs: list[tuple[list[Any], bool]] = []
    states = []
    async for state in follow_job(sidecar.url("/"), "j", on_log=lambda e, r: logs.append((e, r))):
        states.append(state)
        if state["current_step"] == 1 and len(states) == 1:
            write_atomic(job / "progress.json", {"status": "running", "current_step": 2})
        elif state["current_step"] == 2:
            write_atomic(
                job / "progress.json", {"status": "completed", "current_step": 3, "final_loss": 0.5}
            )
    assert [s["current_step"] for s in states] == [1, 2, 3]
    assert states[-1]["complete"] is True and "type" not in states[-1] and "seq" not in states[-1]
    assert logs[0] == ([{"step": 1, "loss": 2.0}], False)


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
async def test_follow_a_finished_job_gives_its_history_before_the_end(
    jobs_root: Path, start_sidecar: StartSidecar, status: str
) -> None:
    """A finished job's state comes first, then its history: on_log has it before the end
    (the client ended on the final state, and the history was lost)."""
    job = jobs_root / "done"
    write_atomic(job / "progress.json", {"status": status, "current_step": 2})
    (job / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.0}\n')
    sidecar = await start_sidecar()
    logs: list[list[Any]] = []
    states = [
        state
        async for state in follow_job(sidecar.url("/"), "done", on_log=lambda e, r: logs.append(e))
    ]
    assert [s["status"] for s in states] == [status]
    assert logs == [[{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}]]


async def test_follow_reconnects_across_a_sidecar_restart(jobs_root: Path) -> None:
    file = jobs_root / "j" / "progress.json"
    write_atomic(file, {"status": "running", "current_step": 1})
    port = free_port()
    server = TestServer(create_app(Settings(root=jobs_root)), host="127.0.0.1", port=port)
    await server.start_server()
    url = f"http://127.0.0.1:{port}"
    stream = follow_job(url, "j", min_backoff=0.02, max_backoff=0.2)
    assert (await anext(stream))["current_step"] == 1
    await server.close()
    # Written while no sidecar runs: the restarted one reads it, the client sees it.
    write_atomic(file, {"status": "running", "current_step": 2})
    server = TestServer(create_app(Settings(root=jobs_root)), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        assert (await asyncio.wait_for(anext(stream), 10))["current_step"] == 2
        write_atomic(file, {"status": "failed", "error": "boom"})
        final = await asyncio.wait_for(anext(stream), 10)
        assert (final["status"], final["complete"]) == ("failed", True)
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
    finally:
        await stream.aclose()
        await server.close()


async def test_follow_waits_for_a_job_that_does_not_exist_yet(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar()
    retries: list[tuple[int | None, str]] = []
    stream = follow_job(
        sidecar.url("/"),
        "later",
        wait_for_job=True,
        on_retry=lambda code, reason: retries.append((code, reason)),
        min_backoff=0.02,
        max_backoff=0.1,
    )
    first = asyncio.ensure_future(anext(stream))
    await wait_for(lambda: len(retries) >= 2, what="two unknown-job answers")
    assert not first.done()
    assert retries[0] == (4404, "unknown job")
    write_atomic(jobs_root / "later" / "progress.json", {"status": "running"})
    assert (await asyncio.wait_for(first, 10))["status"] == "running"
    await stream.aclose()
