"""WebSocket streams as jobs and the jobs root come and go, and as ended jobs close."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sidecar.server.close_pacer import ClosePolicy
from sidecar.server.keys import CLOSES
from tests.conftest import Sidecar, StartSidecar
from tests.helpers import StreamClient, wait_for, write_atomic
from tests.sidecar.server.ws import progress


async def test_pending_job_directory_then_file(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    (jobs_root / "job1").mkdir()
    sidecar = await start_sidecar()
    client = await sidecar.connect("job1")
    snapshot = await client.next()
    assert snapshot is not None
    assert snapshot["status"] == "pending"
    write_atomic(jobs_root / "job1" / "progress.json", progress(current_step=1))
    await client.until(lambda s: s["status"] == "running" and s["current_step"] == 1)


async def test_new_job_appears_and_removed_job_closes_4404(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar()
    write_atomic(jobs_root / "late" / "progress.json", progress("late"))

    async def listed() -> bool:
        _, body = await sidecar.get_json("/api/jobs")
        return [j["job_id"] for j in body["jobs"]] == ["late"]

    await wait_for(listed, what="the new job to be listed")
    client = await sidecar.connect("late")
    await client.next()
    shutil.rmtree(jobs_root / "late")
    assert await client.closed() == 4404
    assert client.ws.close_code == 4404
    status, _ = await sidecar.get_json("/api/jobs/late")
    assert status == 404


async def test_root_created_late(tmp_path: Path, start_sidecar: StartSidecar) -> None:
    root = tmp_path / "not-yet"
    sidecar = await start_sidecar(root)
    _, health = await sidecar.get_json("/healthz")
    assert (health["root"], health["root_path"], health["root_present"]) == (
        "missing",
        str(root),
        False,
    )
    write_atomic(root / "job1" / "progress.json", progress(current_step=7))

    async def has_job() -> bool:
        status, _ = await sidecar.get_json("/api/jobs/job1")
        return status == 200

    await wait_for(has_job, what="the job under the late root")
    client = await sidecar.connect("job1")
    await client.until(lambda s: s.get("current_step") == 7)
    write_atomic(root / "job1" / "progress.json", progress(current_step=8))
    await client.until(lambda s: s.get("current_step") == 8)


async def test_root_deleted_and_recreated(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    write_atomic(jobs_root / "job1" / "progress.json", progress(current_step=1))
    sidecar = await start_sidecar()
    client = await sidecar.connect("job1")
    await client.next()
    shutil.rmtree(jobs_root)
    assert await client.closed() == 4404

    async def jobs() -> list[str]:
        _, body = await sidecar.get_json("/api/jobs")
        return [j["job_id"] for j in body["jobs"]]

    await wait_for(lambda: _equals(jobs(), []), what="jobs gone with the root")
    write_atomic(jobs_root / "job2" / "progress.json", progress("job2", current_step=1))
    await wait_for(lambda: _equals(jobs(), ["job2"]), what="the job under the new root")
    client = await sidecar.connect("job2")
    await client.next()
    write_atomic(jobs_root / "job2" / "progress.json", progress("job2", current_step=2))
    await client.until(lambda s: s.get("current_step") == 2)


async def _equals(value: Any, want: Any) -> bool:
    return bool(await value == want)


async def ended_with_close_waiting(
    jobs_root: Path, start_sidecar: StartSidecar
) -> tuple[Sidecar, StreamClient]:
    """A sidecar whose closes never get their turn by themselves, and a client of job1 that
    holds job1's final state, its close waiting in the pacer."""
    file = jobs_root / "job1" / "progress.json"
    write_atomic(file, progress(current_step=1))
    sidecar = await start_sidecar()
    pacer = sidecar.app[CLOSES]
    pacer.policy = ClosePolicy(quiet=60, max_wait=60)
    client = await sidecar.connect("job1")
    await client.next()
    write_atomic(file, {"job_id": "job1", "status": "completed", "current_step": 2})
    await client.until(lambda s: s["status"] == "completed")
    await wait_for(lambda: len(pacer) == 1, what="the close to wait its turn")
    return sidecar, client


async def test_a_job_removed_while_its_close_waits_still_ends_complete(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """The final state went out; the close that waits its turn (paced) stays "job complete"
    even if the job directory goes before that turn."""
    _sidecar, client = await ended_with_close_waiting(jobs_root, start_sidecar)
    shutil.rmtree(jobs_root / "job1")
    assert await client.closed() == 1000
    assert client.ws.close_code == 1000


async def test_a_job_rewritten_while_its_close_waits_sends_nothing_more(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """A client that has its job's final state gets no later state: its connection ends as
    complete, whatever the file says meanwhile."""
    _sidecar, client = await ended_with_close_waiting(jobs_root, start_sidecar)
    # The training server reuses the id.
    write_atomic(jobs_root / "job1" / "progress.json", progress(current_step=3))
    assert await client.closed() == 1000
    assert client.state is not None and client.state["status"] == "completed"


async def test_a_shutdown_closes_ended_jobs_as_complete(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """Closes that wait their turn at shutdown go out as 1000 (complete), not 1001."""
    sidecar, client = await ended_with_close_waiting(jobs_root, start_sidecar)
    await sidecar.app.shutdown()
    assert await client.closed() == 1000
