"""The watcher on its own paths: polling, reconciliation, many jobs at once."""

from __future__ import annotations

import os
from pathlib import Path

from sidecar.core.hub import JobHub
from sidecar.files.layout import JobLayout
from sidecar.files.watcher import FileWatcher
from tests.conftest import StartSidecar
from tests.helpers import wait_for, write_atomic


async def test_polling_sees_replaces_within_the_same_second(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """Polling compares inode, size and mtime in ns, so fast replaces are not missed."""
    file = jobs_root / "j" / "progress.json"
    write_atomic(file, {"status": "running", "step": 0})
    sidecar = await start_sidecar(poll=True, poll_interval=0.02)
    client = await sidecar.connect("j")
    for step in range(1, 6):
        write_atomic(file, {"status": "running", "step": step})
        await client.until(lambda s, step=step: s.get("step") == step)


async def test_polling_sees_new_and_removed_jobs(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(poll=True, poll_interval=0.02)
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running"})

    async def count() -> int:
        _, body = await sidecar.get_json("/api/jobs")
        return len(body["jobs"])

    await wait_for(lambda: _is(count(), 1), what="the new job")
    (jobs_root / "j" / "progress.json").unlink()
    (jobs_root / "j").rmdir()
    await wait_for(lambda: _is(count(), 0), what="the job to go")


async def _is(value: object, want: object) -> bool:
    return bool(await value == want)  # type: ignore[misc]


async def test_reconcile_catches_a_change_no_event_reported(tmp_path: Path) -> None:
    """The scan alone, with no watch running, brings the hub up to date."""
    file = tmp_path / "j" / "progress.json"
    write_atomic(file, {"status": "running", "step": 1})
    hub = JobHub()
    watcher = FileWatcher(JobLayout(tmp_path, "{job_id}/progress.json"), hub.apply, origin="here")
    await watcher.reconcile()
    state = hub.get("j")
    assert state is not None and state.document["step"] == 1
    write_atomic(file, {"status": "running", "step": 2})
    await watcher.reconcile()
    state = hub.get("j")
    assert state is not None and state.document["step"] == 2
    os.remove(file)
    os.rmdir(file.parent)
    await watcher.reconcile()
    # A vanished file is read again a few times first: a writer may be replacing it.
    await wait_for(lambda: hub.get("j") is None, what="the job to go")


async def test_many_jobs_at_once(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    for i in range(200):
        write_atomic(jobs_root / f"job{i}" / "progress.json", {"status": "running", "step": 0})
    sidecar = await start_sidecar()
    for i in range(200):
        write_atomic(jobs_root / f"job{i}" / "progress.json", {"status": "running", "step": 1})

    async def all_updated() -> bool:
        for i in range(200):
            status, body = await sidecar.get_json(f"/api/jobs/job{i}")
            if status != 200 or body["step"] != 1:
                return False
        return True

    await wait_for(all_updated, what="every job's second state")
