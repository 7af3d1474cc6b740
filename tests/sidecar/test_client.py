"""The Python client and the tail command, against real sidecars on real sockets."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from sidecar.app import create_app
from sidecar.client import StreamError, follow_job, ws_url
from sidecar.settings import Settings
from sidecar.tail import outcome, render
from tests.conftest import StartSidecar
from tests.helpers import write_atomic


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ws_url() -> None:
    assert ws_url("http://h:1/", "j") == "ws://h:1/ws/training/j"
    assert ws_url("https://h", "j", history=True) == "wss://h/ws/training/j?history=1"


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
    stream = follow_job(sidecar.url("/"), "later", min_backoff=0.02, max_backoff=0.1)
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.1)
    assert not first.done()
    write_atomic(jobs_root / "later" / "progress.json", {"status": "running"})
    assert (await asyncio.wait_for(first, 10))["status"] == "running"
    await stream.aclose()


async def test_follow_gives_up_on_refusals(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar()
    with pytest.raises(StreamError) as invalid:
        await anext(follow_job(sidecar.url("/"), "-bad"))
    assert (invalid.value.code, invalid.value.reason) == (4400, "invalid job id")
    with pytest.raises(StreamError) as unknown:
        await anext(follow_job(sidecar.url("/"), "nope", wait_for_job=False))
    assert unknown.value.code == 4404


def test_render_and_outcome() -> None:
    line = render(
        {"status": "running", "progress": 50.0, "current_step": 5, "total_steps": 10, "loss": 0.25,
         "eval_loss": 0.3, "samples_per_second": 12.34, "eta_seconds": 3725, "stalled": True}
    )  # fmt: skip
    assert line == (
        "running  [############------------]  50.0%  step 5/10  loss 0.2500  eval 0.3000"
        "  12.3 samples/s  ETA 1:02:05  STALLED"
    )
    assert render({"status": "pending"}) == "pending"
    assert outcome({"status": "completed", "final_loss": 0.1}) == (
        "completed: final loss 0.1000",
        0,
    )
    assert outcome({"status": "failed", "error": "OOM"}) == ("failed: OOM", 1)
    assert outcome({"status": "cancelled"}) == ("cancelled", 1)


@pytest.mark.parametrize(
    ("final", "code", "last_line"),
    [
        ({"status": "completed", "final_loss": 0.5}, 0, "j completed: final loss 0.5000"),
        ({"status": "failed", "error": "CUDA out of memory"}, 1, "j failed: CUDA out of memory"),
    ],
)
async def test_tail_command(
    jobs_root: Path, start_sidecar: StartSidecar, final: dict[str, Any], code: int, last_line: str
) -> None:
    file = jobs_root / "j" / "progress.json"
    write_atomic(
        file, {"status": "running", "progress": 10.0, "current_step": 1, "total_steps": 10}
    )
    sidecar = await start_sidecar()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "tail", "j", "--url", sidecar.url("/"),
        stdout=asyncio.subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    first = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
    assert first.startswith("j  running  [##") and "step 1/10" in first
    write_atomic(file, {**final, "progress": 100.0})
    out, _ = await asyncio.wait_for(process.communicate(), 20)
    assert await process.wait() == code
    assert out.decode().splitlines()[-1] == last_line
