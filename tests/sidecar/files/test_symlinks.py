"""The sidecar reads only below the jobs root: a symlink out of it is never followed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sidecar.files.layout import JobLayout
from sidecar.server.keys import WATCHER
from tests.conftest import StartSidecar
from tests.helpers import wait_for, write_atomic

SECRET = {"status": "completed", "secret": "outside the root"}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A job-like directory outside the jobs root, with a progress file and a history."""
    place = tmp_path / "outside"
    write_atomic(place / "progress.json", SECRET)
    (place / "metrics.jsonl").write_text('{"step": 1, "secret": "outside"}\n')
    return place


def test_scan_does_not_follow_a_symlinked_job_directory(jobs_root: Path, outside: Path) -> None:
    write_atomic(jobs_root / "real" / "progress.json", {"status": "running"})
    (jobs_root / "linkjob").symlink_to(outside)
    (jobs_root / "etcjob").symlink_to("/etc")
    found = JobLayout(jobs_root, "{job_id}/progress.json").scan()
    assert list(found.jobs) == ["real"]
    assert sorted(p.name for p in found.links) == ["etcjob", "linkjob"]


def test_scan_does_not_follow_a_symlink_on_the_way(tmp_path: Path, outside: Path) -> None:
    """A pattern with a directory above the job's: a symlink there leads out of the root too."""
    root = tmp_path / "root"
    write_atomic(root / "runs" / "a" / "progress.json", {"status": "running"})
    (root / "other").symlink_to(outside.parent)  # root/other/outside/progress.json
    layout = JobLayout(root, "runs/{job_id}/progress.json")
    assert list(layout.scan().jobs) == ["a"]
    flat = JobLayout(root, "other/{job_id}/progress.json").scan()
    assert flat.jobs == {} and flat.links == [root / "other"]


async def test_a_symlinked_job_directory_is_never_served(
    jobs_root: Path,
    outside: Path,
    start_sidecar: StartSidecar,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_atomic(jobs_root / "real" / "progress.json", {"status": "running", "current_step": 1})
    (jobs_root / "linkjob").symlink_to(outside)
    (jobs_root / "etcjob").symlink_to("/etc")
    with caplog.at_level(logging.WARNING, logger="sidecar"):
        sidecar = await start_sidecar(rescan_interval=0.1)
        (jobs_root / "late").symlink_to(outside)  # after the start: seen by inotify and scans
        write_atomic(outside / "progress.json", {**SECRET, "current_step": 2})
        with (outside / "metrics.jsonl").open("a") as history:
            history.write('{"step": 2, "secret": "outside"}\n')
        await wait_for(
            lambda: sum("late" in r.getMessage() for r in caplog.records) == 1,
            what="the late symlink logged",
        )
        status, body = await sidecar.get_json("/api/jobs")
        assert status == 200 and [job["job_id"] for job in body["jobs"]] == ["real"]
        for job in ("linkjob", "etcjob", "late"):
            assert (await sidecar.get_json(f"/api/jobs/{job}"))[0] == 404
            assert (await sidecar.get_json(f"/api/jobs/{job}/history"))[0] == 404
            client = await sidecar.connect(job, "history=1")
            assert await client.closed() == 4404 and client.messages == []
        for _ in range(3):  # scans come and go: still said once for each link
            scans = sidecar.app[WATCHER].stats.scans
            await wait_for(lambda s=scans: sidecar.app[WATCHER].stats.scans > s + 1)
    said = [r.getMessage() for r in caplog.records if "symlink" in r.getMessage()]
    assert sorted(line.split("/")[-1].split()[0] for line in said) == ["etcjob", "late", "linkjob"]
    assert all("not followed" in line for line in said)
