from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sidecar.core.events import JobSeen
from sidecar.core.hub import JobHub
from sidecar.server.stall_clock import pid_alive, process_alive, tick_interval

T0 = 1_762_432_200.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def seen(job_id: str, document: dict[str, object]) -> JobSeen:
    return JobSeen("this-host", job_id, document, T0)


def test_tick_interval_is_a_quarter_of_the_timeout_within_bounds() -> None:
    assert tick_interval(60) == 1.0
    assert tick_interval(2) == 0.5
    assert tick_interval(0.01) == 0.05


def test_sweep_flips_stalled_both_ways() -> None:
    clock = Clock(T0)
    hub = JobHub(stall_after=10, clock=clock)
    hub.apply(seen("a", {"status": "running"}))
    hub.apply(seen("b", {"status": "completed"}))
    clock.now = T0 + 5
    assert hub.sweep() == 0
    clock.now = T0 + 10
    assert hub.sweep() == 1
    a = hub.get("a")
    assert a is not None and a.stalled
    clock.now = T0 + 20
    assert hub.sweep() == 0
    # A clock that went back un-stalls.
    clock.now = T0 + 1
    assert hub.sweep() == 1
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
    clock = Clock(T0)
    hub = JobHub(stall_after=60, clock=clock)
    for job, host in (("here", "this-host"), ("there", "other-host")):
        hub.apply(seen(job, {"status": "running", "pid": child.pid, "hostname": host}))
    hub.apply(seen("me", {"status": "running", "pid": os.getpid(), "hostname": "this-host"}))
    clock.now = T0 + 1
    assert hub.sweep(process_alive=lambda s: process_alive(s, hostname="this-host")) == 1
    here, there, me = hub.get("here"), hub.get("there"), hub.get("me")
    assert here is not None and here.stall_reason == "process exited"
    assert there is not None and not there.stalled
    assert me is not None and not me.stalled
    # A read that brings no new write keeps it so until the next sweep looks again.
    hub.apply(seen("here", {"status": "running", "pid": child.pid, "hostname": "this-host"}))
    here = hub.get("here")
    assert here is not None and here.stall_reason == "process exited"
