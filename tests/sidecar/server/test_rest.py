from __future__ import annotations

import socket
from pathlib import Path

import yarl

from tests.conftest import StartSidecar
from tests.helpers import write_atomic


async def test_list_jobs(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    write_atomic(
        jobs_root / "b" / "progress.json", {"status": "running", "progress": 45.5, "loss": 1.0}
    )
    write_atomic(jobs_root / "a" / "progress.json", {"status": "completed", "progress": 100})
    (jobs_root / "c").mkdir()
    sidecar = await start_sidecar()
    status, body = await sidecar.get_json("/api/jobs")
    assert status == 200
    jobs = body["jobs"]
    assert [j["job_id"] for j in jobs] == ["a", "b", "c"]
    assert {k: v for k, v in jobs[1].items() if k != "updated_at"} == {
        "job_id": "b",
        "node": socket.gethostname(),
        "status": "running",
        "progress": 45.5,
        "complete": False,
        "stalled": False,
        "loss": 1.0,
    }
    assert jobs[0]["complete"] is True
    assert jobs[2]["status"] == "pending"
    assert all(j["updated_at"].endswith("Z") for j in jobs)


async def test_get_job_is_the_snapshot(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    write_atomic(
        jobs_root / "j" / "progress.json", {"status": "running", "loss": 0.25, "eta_seconds": 1200}
    )
    sidecar = await start_sidecar()
    status, body = await sidecar.get_json("/api/jobs/j")
    assert status == 200
    client = await sidecar.connect("j")
    snapshot = await client.next()
    assert body == snapshot
    assert body["loss"] == 0.25 and body["type"] == "snapshot"


async def test_errors_are_json(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar()
    assert await sidecar.get_json("/api/jobs/nosuchjob") == (404, {"error": "unknown job"})
    assert await sidecar.get_json("/api/jobs/-bad") == (400, {"error": "invalid job id"})
    assert await sidecar.get_json("/no/such/path") == (404, {"error": "not found"})
    # An encoded traversal is decoded by the server and refused like any other bad id.
    url = yarl.URL(sidecar.url("/")).with_path("/api/jobs/%2E%2E", encoded=True)
    async with sidecar.session.get(url) as response:
        assert (response.status, await response.json()) == (400, {"error": "invalid job id"})
    # A plain GET on the WebSocket path is a client error with a JSON body.
    async with sidecar.session.get(sidecar.url("/ws/training/x")) as response:
        assert response.status == 400
        assert "error" in await response.json()


async def test_healthz(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running"})
    sidecar = await start_sidecar()
    client = await sidecar.connect("j")
    await client.next()
    status, body = await sidecar.get_json("/healthz")
    assert status == 200
    assert body == {
        "status": "ok",
        "node": socket.gethostname(),
        "watcher": "inotify",
        "watcher_reason": "local filesystem",
        "root": "present",
        "root_path": str(jobs_root),
        "root_present": True,
        "jobs": 1,
        "clients": 1,
    }
    polling = await start_sidecar(poll=True)
    _, body = await polling.get_json("/healthz")
    assert (body["watcher"], body["watcher_reason"]) == ("polling", "--poll")
