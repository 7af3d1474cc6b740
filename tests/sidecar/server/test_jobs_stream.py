"""GET /ws/jobs: the jobs list as a snapshot, then merge patches by job."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from sidecar.core.patch import apply_merge_patch
from sidecar.server.keys import SOCKETS
from tests.conftest import StartSidecar
from tests.helpers import silent_client, wait_for, write_atomic
from tests.sidecar.server.test_metrics import scrape


async def test_jobs_list_snapshot_then_patches(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    write_atomic(
        jobs_root / "a" / "progress.json",
        {"status": "running", "progress": 10.0, "current_step": 1},
    )
    sidecar = await start_sidecar()
    async with sidecar.session.ws_connect(
        sidecar.ws_url("x").replace("/ws/training/x", "/ws/jobs")
    ) as ws:
        snapshot = await ws.receive_json(timeout=5)
        assert snapshot["type"] == "snapshot"
        seq = snapshot["seq"]  # the list's number, shared by every dashboard
        jobs: dict[str, Any] = snapshot["jobs"]
        assert jobs["a"]["progress"] == 10.0 and jobs["a"]["current_step"] == 1
        write_atomic(
            jobs_root / "a" / "progress.json",
            {"status": "running", "progress": 20.0, "current_step": 2},
        )
        write_atomic(jobs_root / "b" / "progress.json", {"status": "running"})
        while not ("b" in jobs and jobs["a"]["progress"] == 20.0):
            message = await ws.receive_json(timeout=5)
            assert (message["type"], message["seq"]) == ("patch", seq + 1)
            seq += 1
            jobs = apply_merge_patch(jobs, message["jobs"])
        assert "status" not in message["jobs"].get("a", {})  # only what changed
        shutil.rmtree(jobs_root / "b")
        while "b" in jobs:
            message = await ws.receive_json(timeout=5)
            jobs = apply_merge_patch(jobs, message["jobs"])
        assert set(jobs) == {"a"}


async def test_jobs_list_needs_the_token(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(token="t")
    url = sidecar.ws_url("x").replace("/ws/training/x", "/ws/jobs")
    async with sidecar.session.ws_connect(url) as ws:
        message = await ws.receive(timeout=5)
        assert (message.data, message.extra) == (4401, "unauthorized")
    async with sidecar.session.ws_connect(url, protocols=("bearer", "t")) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "snapshot"


async def test_static_files_are_public_and_the_page_is_not(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(token="t")
    elsewhere = {"Origin": "https://some-frontend.example"}
    async with sidecar.session.get(
        sidecar.url("/static/progress-client.js"), headers=elsewhere
    ) as response:
        assert response.status == 200
        assert "class ProgressClient" in await response.text()
    async with sidecar.session.get(sidecar.url("/static/vendor/uPlot.LICENSE")) as response:
        assert response.status == 200 and "MIT" in await response.text()
    async with sidecar.session.get(sidecar.url("/")) as response:
        assert response.status == 401
    async with sidecar.session.get(sidecar.url("/?token=t")) as response:
        assert response.status == 200
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert '<script src="/static/dashboard.js">' in await response.text()


async def test_jobs_list_drops_a_client_that_reads_nothing_and_counts_it(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """The policy of /ws/training: after --send-timeout without a read, the client goes, and
    /metrics counts it; a client that reads keeps its list."""
    file = jobs_root / "a" / "progress.json"
    write_atomic(file, {"status": "running", "current_step": 0})
    sidecar = await start_sidecar(send_timeout=0.3)
    sockets = sidecar.app[SOCKETS]
    url = sidecar.ws_url("x").replace("/ws/training/x", "/ws/jobs")
    async with sidecar.session.ws_connect(url) as good:
        jobs: dict[str, Any] = (await good.receive_json(timeout=5))["jobs"]

        async def follow() -> None:
            nonlocal jobs
            async for message in good:
                jobs = apply_merge_patch(jobs, message.json()["jobs"])

        following = asyncio.create_task(follow())
        writer = await silent_client(sidecar.server.host, sidecar.server.port, path="/ws/jobs")
        await wait_for(lambda: len(sockets) == 2, what="the silent client to register")
        step = 0
        while len(sockets) == 2:
            step += 1
            assert step < 3000, "the silent client was never dropped"
            # Large summaries (the status is in them) fill the silent client's buffers fast.
            write_atomic(file, {"status": f"running {step:06d}" + "x" * 200_000})
            await asyncio.sleep(0.02)
        assert (await scrape(sidecar))["sidecar_send_timeouts_total"] == 1
        write_atomic(file, {"status": "running", "current_step": 1})
        await wait_for(lambda: jobs["a"].get("current_step") == 1, what="the good client's list")
        following.cancel()
        await asyncio.wait([following])
        writer.close()
        await writer.wait_closed()
