"""The reconciliation scan: what one scan means for each job, worked through a slice at a time,
and how long to wait before the next.

A scan stats every job (``JobLayout.scan``, in a thread); with 100,000 jobs it takes about half
a second, and every 5 s it was most of the sidecar's CPU at rest. So the pause before the next
scan is at least ``RESCAN_COST_FACTOR`` times what the last one took (about 1 % of a core at
most), never below ``--rescan-interval``; and the comparison of what it found with what was
read, on the event loop, yields every ``SLICE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable
from typing import Final

from sidecar.files.job_reader import JobReader
from sidecar.files.layout import Scan

RESCAN_COST_FACTOR: Final = 100
"""A rescan waits at least this many times as long as the last one took."""
POLL_COST_FACTOR: Final = 20
"""A poll waits at least this many times as long as the last one took."""
SLICE_SECONDS: Final = 0.002
CHECK_EVERY: Final = 16
SORT_RUN: Final = 4096
"""New job ids sorted at a time (about a ms)."""


def rescan_pause(took: float, *, floor: float) -> float:
    """Seconds to wait before the next scan, after one that took ``took`` seconds: at least
    ``floor`` (``--rescan-interval``), and long enough for scans to cost at most about 1/
    ``RESCAN_COST_FACTOR`` of the time."""
    return max(floor, RESCAN_COST_FACTOR * took)


def poll_pause(took: float, *, floor: float) -> float:
    """Seconds to wait before the next poll (``--poll``, a network filesystem, or a name that
    keeps inotify from working), after one that took ``took``: at least ``floor``
    (``--poll-interval``), and long enough for polls to cost at most about 1/
    ``POLL_COST_FACTOR`` of the time (a poll of 100,000 jobs takes about half a second)."""
    return max(floor, POLL_COST_FACTOR * took)


async def refresh_differing(scan: Scan, jobs: JobReader, refresh: Callable[[str], None]) -> None:
    """Refresh every job whose file differs from what was last read of it, those gone, and the
    new ones, a slice at a time.

    New jobs go in the order of their ids (the hub keeps the jobs list in order cheaply when
    they come so; they are sorted a run of ``SORT_RUN`` at a time, then merged); a new job the
    scan found without a file, with its directory's mtime, is published as pending at once
    (``JobReader.found_pending``: at start, 100,000 pending jobs are read in no time). Jobs
    whose file is being read again after a bad read are left to those re-reads: a scan every
    poll would start them over and over.
    """
    slices = _Slices()
    new: list[str] = []
    for job_id, signature in scan.jobs.items():
        if job_id in jobs.retries:
            pass
        elif job_id not in jobs.known:
            new.append(job_id)
        elif jobs.seen.get(job_id) != signature:
            refresh(job_id)
        if slices.due():
            await asyncio.sleep(0)
    for job_id in list(jobs.seen):
        if job_id not in scan.jobs and job_id not in jobs.retries:
            refresh(job_id)
        if slices.due():
            await asyncio.sleep(0)
    runs = []
    for at in range(0, len(new), SORT_RUN):
        runs.append(sorted(new[at : at + SORT_RUN]))
        await asyncio.sleep(0)
    for job_id in heapq.merge(*runs):
        if job_id in jobs.known or job_id in jobs.retries:
            pass  # read meanwhile (an event came for it)
        elif scan.jobs[job_id] is None and (dir_mtime := scan.dir_mtimes.get(job_id)) is not None:
            jobs.found_pending(job_id, dir_mtime=dir_mtime)
        else:
            refresh(job_id)
        if slices.due():
            await asyncio.sleep(0)


class _Slices:
    """Says when a slice of work has taken ``SLICE_SECONDS``: time to let the event loop go."""

    __slots__ = ("count", "deadline")

    def __init__(self) -> None:
        self.count = 0
        self.deadline = time.perf_counter() + SLICE_SECONDS

    def due(self) -> bool:
        """Whether the slice under way is over (the next one starts then)."""
        self.count += 1
        if self.count % CHECK_EVERY or time.perf_counter() <= self.deadline:
            return False
        self.deadline = time.perf_counter() + SLICE_SECONDS
        return True
