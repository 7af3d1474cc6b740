"""The reconciliation scan with many jobs: pending jobs found without a read, and rescans whose
pause grows with their cost (issue 20, point 6)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sidecar.core.contract import isoformat_utc
from sidecar.core.hub import JobHub
from sidecar.files.layout import JobLayout
from sidecar.files.rescan import poll_pause, rescan_pause
from sidecar.files.watcher import FileWatcher
from sidecar.server.keys import WATCHER
from tests.conftest import StartSidecar
from tests.helpers import wait_for, write_atomic


async def test_pending_jobs_found_by_a_scan_cost_no_read(tmp_path: Path) -> None:
    """2,000 job directories without a file, and one with: the scan has seen them all, so the
    pending ones are published without opening anything, with their directory's mtime, in
    the order of their ids."""
    for j in range(2000):
        (tmp_path / f"job{j:04d}").mkdir()
    an_hour_ago = time.time() - 3600
    os.utime(tmp_path / "job0007", (an_hour_ago, an_hour_ago))
    write_atomic(tmp_path / "job0003" / "progress.json", {"status": "running", "step": 3})
    hub = JobHub(node="here")
    watcher = FileWatcher(JobLayout(tmp_path, "{job_id}/progress.json"), hub.apply, origin="here")
    await watcher.reconcile()
    assert len(hub) == 2000
    assert watcher.stats.file_reads == 1  # job0003's file; none for the 1,999 pending jobs
    pending = hub.get("job0007")
    assert pending is not None and pending.document == {"status": "pending"}
    assert not pending.has_file
    assert pending.summary()["updated_at"] == isoformat_utc(an_hour_ago)
    running = hub.get("job0003")
    assert running is not None and running.document["step"] == 3
    assert hub.job_ids() == [f"job{j:04d}" for j in range(2000)]
    # A file made in a pending job's directory is read at the next scan.
    write_atomic(tmp_path / "job0007" / "progress.json", {"status": "running", "step": 1})
    await watcher.reconcile()
    running = hub.get("job0007")
    assert running is not None and running.document["step"] == 1


def test_a_rescan_waits_a_hundred_times_what_the_last_one_took() -> None:
    assert rescan_pause(0.01, floor=5.0) == 5.0
    assert rescan_pause(0.5, floor=5.0) == 50.0
    assert rescan_pause(0.0, floor=0.1) == 0.1


async def test_rescans_of_a_big_root_cost_at_most_about_a_percent(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """With --rescan-interval 0.01 and 3,000 jobs, scans do not follow each other every quarter
    of a second (the root check's pace), as they did: each waits 100 times what the last one
    took (3,000 stats take 5 ms at least)."""
    for j in range(3000):
        (jobs_root / f"job{j:04d}").mkdir()
    sidecar = await start_sidecar(rescan_interval=0.01)
    watcher = sidecar.app[WATCHER]
    await wait_for(
        lambda: watcher.stats.scans >= 2 and watcher.rescan_pause > 0.01,
        what="the scan after the watch began",
    )
    pause, scans, began = watcher.rescan_pause, watcher.stats.scans, time.monotonic()
    assert pause >= 0.5, pause
    await wait_for(lambda: watcher.stats.scans > scans, timeout=pause + 10, what="a rescan")
    assert time.monotonic() - began >= pause / 2
    write_atomic(jobs_root / "job0001" / "progress.json", {"status": "running"})
    client = await sidecar.connect("job0001")  # inotify still brings every change at once
    await client.until(lambda s: s.get("status") == "running")


def test_a_poll_waits_longer_after_a_long_one() -> None:
    """Polls of many jobs cost at most about 1/20 of the time; a short one keeps the interval."""
    assert poll_pause(0.001, floor=0.25) == 0.25
    assert poll_pause(0.5, floor=0.25) == pytest.approx(10.0)
