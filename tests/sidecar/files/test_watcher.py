"""The watcher on its own paths: polling, reconciliation, many jobs at once."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from sidecar.core.hub import JobHub
from sidecar.files.layout import JobLayout
from sidecar.files.watcher import FileWatcher
from tests.conftest import StartSidecar
from tests.helpers import wait_for, write_atomic


async def test_polling_sees_a_replace_by_its_inode_alone(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """Polling compares inodes: a file replaced by one of the same size and the same mtime, to
    the nanosecond, is read again."""
    file = jobs_root / "j" / "progress.json"
    write_atomic(file, {"status": "running", "step": 0})
    sidecar = await start_sidecar(poll=True, poll_interval=0.02)
    client = await sidecar.connect("j")
    await client.until(lambda s: s.get("step") == 0)
    for step in range(1, 6):
        before = file.stat()
        new = file.with_name("new.tmp")
        new.write_text(json.dumps({"status": "running", "step": step}))
        os.utime(new, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(new, file)
        after = file.stat()
        assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
        assert after.st_ino != before.st_ino
        await client.until(lambda s, step=step: s.get("step") == step)


async def test_polling_sees_a_rewrite_in_place_within_the_same_second(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """Polling compares mtimes in ns: a file written over in place (the same inode, the same
    size) within the second of the read before is read again."""
    file = jobs_root / "j" / "progress.json"
    write_atomic(file, {"status": "running", "step": 0})
    sidecar = await start_sidecar(poll=True, poll_interval=0.02)
    client = await sidecar.connect("j")
    await client.until(lambda s: s.get("step") == 0)
    inode, size = file.stat().st_ino, file.stat().st_size
    # Both writes must fall in one second of the clock, from the read of the first to the
    # change of the second (a second that ends between them is tried again).
    for step in range(1, 9, 2):  # (one digit each: the size never changes)
        if time.time() % 1 > 0.5:
            await asyncio.sleep(1 - time.time() % 1)
        _write_over(file, step)
        await client.until(lambda s, step=step: s.get("step") == step)
        read = file.stat().st_mtime_ns  # what the poll saw
        _write_over(file, step + 1)
        os.utime(file, ns=(read + 1, read + 1))  # whatever the write's clock said, same second
        changed = file.stat()
        in_one_second = time.time_ns() // 10**9 == read // 10**9
        assert (changed.st_ino, changed.st_size) == (inode, size)
        await client.until(lambda s, step=step: s.get("step") == step + 1)
        if in_one_second:
            break
    assert in_one_second, "every try straddled a second"


def _write_over(file: Path, step: int) -> None:
    """Write the file's bytes over in place, in one write: never shorter or longer meanwhile."""
    with file.open("r+b") as f:
        f.write(json.dumps({"status": "running", "step": step}).encode())


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
