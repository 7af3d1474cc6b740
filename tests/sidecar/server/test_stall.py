from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sidecar.core.hub import JobHub
from sidecar.core.state import with_document
from sidecar.server.stall_clock import pid_alive, sweep, tick_interval

T0 = 1_762_432_200.0


def test_tick_interval_is_a_quarter_of_the_timeout_within_bounds() -> None:
    assert tick_interval(60) == 1.0
    assert tick_interval(2) == 0.5
    assert tick_interval(0.01) == 0.05


def test_sweep_flips_stalled_both_ways() -> None:
    hub = JobHub()
    hub.put(with_document("a", {"status": "running"}, modified_at=T0, now=T0, stall_after=10))
    hub.put(with_document("b", {"status": "completed"}, modified_at=T0, now=T0, stall_after=10))
    assert sweep(hub, now=T0 + 5, stall_after=10) == 0
    assert sweep(hub, now=T0 + 10, stall_after=10) == 1
    a = hub.get("a")
    assert a is not None and a.stalled
    assert sweep(hub, now=T0 + 20, stall_after=10) == 0
    # A clock that went back (or a longer timeout) un-stalls.
    assert sweep(hub, now=T0 + 20, stall_after=100) == 1
    a = hub.get("a")
    assert a is not None and not a.stalled


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # Not reaped yet: it is a zombie once it has exited.
        stat = Path(f"/proc/{child.pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not pid_alive(child.pid)
    finally:
        child.wait()


def test_sweep_stalls_a_job_whose_process_exited_on_this_machine_only() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    hub = JobHub()
    for job, host in (("here", "this-host"), ("there", "other-host")):
        hub.put(
            with_document(
                job,
                {"status": "running", "pid": child.pid, "hostname": host},
                modified_at=T0,
                now=T0,
                stall_after=60,
            )
        )
    hub.put(
        with_document(
            "me",
            {"status": "running", "pid": os.getpid(), "hostname": "this-host"},
            modified_at=T0,
            now=T0,
            stall_after=60,
        )
    )
    assert sweep(hub, now=T0 + 1, stall_after=60, hostname="this-host") == 1
    here, there, me = hub.get("here"), hub.get("there"), hub.get("me")
    assert here is not None and here.stall_reason == "process exited"
    assert there is not None and not there.stalled
    assert me is not None and not me.stalled
