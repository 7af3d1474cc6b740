"""The stall clock: flips ``stalled`` on jobs whose file stops (or starts again) changing, or
whose trainer process, on this machine, has exited without saying so."""

from __future__ import annotations

import asyncio
import os
import socket

from sidecar.core.hub import JobHub
from sidecar.core.state import JobState


def tick_interval(stall_after: float) -> float:
    """How often to look: often enough to be at most a quarter late, at most once a second."""
    return max(0.05, min(1.0, stall_after / 4))


def pid_alive(pid: int) -> bool:
    """Whether a process runs (a zombie, exited but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # The state letter follows the ")" that closes the command name.
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:
        pass  # no /proc here: ask the kernel instead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def process_alive(state: JobState, *, hostname: str) -> bool | None:
    """Whether the trainer process a job's file names still runs; None when unknowable."""
    process = state.trainer_process
    if process is None or process[1] != hostname:
        return None
    return pid_alive(process[0])


async def run_stall_clock(hub: JobHub, *, stall_after: float) -> None:
    """Sweep forever, until cancelled: the hub applies the stall rule (in the core), this
    clock supplies the time and what only this machine can know, whether a trainer process
    that runs here still does."""
    interval = tick_interval(stall_after)
    hostname = socket.gethostname()
    while True:
        await asyncio.sleep(interval)
        hub.sweep(process_alive=lambda state: process_alive(state, hostname=hostname))
