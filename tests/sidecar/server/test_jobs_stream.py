"""GET /ws/jobs: the jobs list as a snapshot, then merge patches by job."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sidecar.core.patch import apply_merge_patch
from tests.conftest import StartSidecar
from tests.helpers import write_atomic


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
        assert (snapshot["type"], snapshot["seq"]) == ("snapshot", 1)
        jobs: dict[str, Any] = snapshot["jobs"]
        assert jobs["a"]["progress"] == 10.0 and jobs["a"]["current_step"] == 1
        write_atomic(
            jobs_root / "a" / "progress.json",
            {"status": "running", "progress": 20.0, "current_step": 2},
        )
        write_atomic(jobs_root / "b" / "progress.json", {"status": "running"})
        while not ("b" in jobs and jobs["a"]["progress"] == 20.0):
            message = await ws.receive_json(timeout=5)
            assert message["type"] == "patch" and message["seq"] > 1
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
