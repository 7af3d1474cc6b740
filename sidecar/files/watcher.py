"""The file source: watch the jobs root and read what changed; events go to a sink.

This module decides when to look (inotify batches, polls, scans, the root coming and going);
``JobReader`` reads a job's file and publishes what the read means (by ``read_rules``), keeping
its own memory of each job, so the source never reads the hub back; ``HistoryFollower``
follows the histories someone wants.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sidecar.core.events import HistoryInterest, Sink
from sidecar.core.history_log import DEFAULT_MAX_ENTRIES
from sidecar.files.fstype import detect_network_filesystem
from sidecar.files.history_follower import HistoryFollower
from sidecar.files.job_reader import JobReader
from sidecar.files.layout import JobLayout
from sidecar.files.notify import (
    DEFAULT_HOT_STEP_MS,
    DEFAULT_WARM_SECONDS,
    StepSchedule,
    change_batches,
)
from sidecar.files.reader import DEFAULT_MAX_BYTES
from sidecar.files.stats import WatchStats

logger = logging.getLogger(__name__)

ROOT_CHECK_INTERVAL = 0.25
POLL_INTERVAL = 0.25
RESCAN_INTERVAL = 5.0


class FileWatcher:
    """Keeps a sink in step with the progress files (and wanted histories) under a root.

    Args:
        layout: where the files lie.
        sink: where events go (the hub's ``apply``).
        origin: the node name the events carry.
        interest: whose histories are wanted; None: no history is ever read.
        poll: always find changes by stat every ``poll_interval`` instead of inotify (the
            watcher also polls, on its own, when the root is on a network filesystem).
        poll_interval: seconds between two polls.
        rescan_interval: seconds between two reconciliation scans while on inotify.
        max_file_bytes: larger progress files are refused.
        max_history: the most history lines worth reading of a long backlog.
        watch_step_ms: the quiet time, in ms, that ends a batch of events while they flow.
        watch_warm_seconds: how long after the last event the watcher stays quick (a 3-ms
            step, before the 25-ms one at rest).
        clock: POSIX time, for jobs first seen without a readable file.
    """

    def __init__(
        self,
        layout: JobLayout,
        sink: Sink,
        *,
        origin: str,
        interest: HistoryInterest | None = None,
        poll: bool = False,
        poll_interval: float = POLL_INTERVAL,
        rescan_interval: float = RESCAN_INTERVAL,
        max_file_bytes: int = DEFAULT_MAX_BYTES,
        max_history: int = DEFAULT_MAX_ENTRIES,
        watch_step_ms: int = DEFAULT_HOT_STEP_MS,
        watch_warm_seconds: float = DEFAULT_WARM_SECONDS,
        clock: Callable[[], float] = time.time,
        detect_filesystem: Callable[[Path], str | None] = detect_network_filesystem,
    ) -> None:
        self.layout = layout
        self.poll = poll
        self.poll_interval = poll_interval
        self.rescan_interval = rescan_interval
        self.watch_step_ms = watch_step_ms
        self.watch_warm_seconds = watch_warm_seconds
        self._detect_filesystem = detect_filesystem
        self.polling = poll
        self.mode_reason = "--poll" if poll else "not started"
        self._links_said: set[Path] = set()
        self.stats = WatchStats()
        self.histories = HistoryFollower(
            layout, sink, origin=origin, max_entries=max_history, refresh=self._refresh
        )
        self.jobs = JobReader(
            layout,
            sink,
            origin=origin,
            stats=self.stats,
            max_file_bytes=max_file_bytes,
            clock=clock,
            on_forget=self.histories.stop,
        )
        if interest is not None:
            interest.listen(self._history_wanted)
        self.root_present = False
        self.ready = asyncio.Event()
        """Set once the jobs on disk at start are known, or the root is found missing."""

    @property
    def mode(self) -> str:
        return "polling" if self.polling else "inotify"

    async def _choose_mode(self) -> None:
        if self.poll:
            self.polling, self.mode_reason = True, "--poll"
            return
        # statfs on a network mount may hang while its server is away: not on the event loop.
        network = await asyncio.to_thread(self._detect_filesystem, self.layout.root)
        if network is not None:
            self.polling = True
            self.mode_reason = (
                f"network filesystem ({network}): inotify misses other machines' writes"
            )
        else:
            self.polling, self.mode_reason = False, "local filesystem"

    async def run(self) -> None:
        """Watch until cancelled, across the root appearing, vanishing and coming back."""
        try:
            await self._run()
        finally:
            await self.histories.close()

    async def _run(self) -> None:
        root = self.layout.root
        while True:
            root_id = await self._wait_for_root()
            self.root_present = True
            await self._choose_mode()
            logger.info("watching %s by %s (%s)", root, self.mode, self.mode_reason)
            await self.reconcile()
            self.ready.set()
            try:
                if self.polling:
                    await self._poll(root_id)
                else:
                    await self._watch(root_id)
            except (OSError, RuntimeError) as e:
                # watchfiles raises when the root vanishes under it, among other things.
                logger.warning("watching %s failed (%s); starting over", root, e, exc_info=True)
                await asyncio.sleep(ROOT_CHECK_INTERVAL)
            self.root_present = _root_id(root) is not None
            if not self.root_present:
                logger.warning("jobs root %s is gone; waiting for it to come back", root)
            await self.reconcile()

    async def reconcile(self) -> None:
        """Compare every job on disk with what was last read, and refresh what differs."""
        try:
            found, stats, links = await asyncio.to_thread(self.layout.scan)
        except OSError as e:
            logger.warning("scan of %s failed: %s", self.layout.root, e)
            return
        self.stats.scans += 1
        self.stats.scan_stats += stats
        for link in links:
            if link not in self._links_said:
                self._links_said.add(link)
                logger.warning(
                    "%s is a symlink (or lies behind one); not followed: the sidecar reads only "
                    "what lies under the jobs root (said once)",
                    link,
                )
        # History first, as in _watch: a final state comes after the last entries.
        self.histories.read_all_new()
        # Jobs whose file is being read again after a bad read are left to those re-reads:
        # a scan every poll would start them over and over.
        for job_id, signature in found.items():
            if job_id in self.jobs.retries:
                continue
            if job_id not in self.jobs.known or self.jobs.seen.get(job_id) != signature:
                self.histories.refresh_after(job_id)
        for job_id in [j for j in self.jobs.seen if j not in found and j not in self.jobs.retries]:
            self.histories.refresh_after(job_id)

    def _history_wanted(self, job_id: str) -> None:
        if job_id in self.jobs.known:
            self.histories.start(job_id)

    def _refresh(self, job_id: str, arrived: float | None) -> None:
        self.jobs.refresh(job_id, arrived=arrived)

    def refresh(self, job_id: str) -> None:
        """Read one job's file now and publish what it means."""
        self.jobs.refresh(job_id)

    async def _wait_for_root(self) -> tuple[int, int]:
        said = False
        while (root_id := _root_id(self.layout.root)) is None:
            self.ready.set()
            if not said:
                what = "is not a directory" if self.layout.root.exists() else "does not exist"
                logger.warning(
                    "jobs root %s %s (yet); serving no job until it does", self.layout.root, what
                )
                said = True
            await asyncio.sleep(ROOT_CHECK_INTERVAL)
        return root_id

    async def _watch(self, root_id: tuple[int, int]) -> None:
        stop = threading.Event()
        guard = asyncio.create_task(self._guard_root(root_id, stop))
        root = str(self.layout.root)
        try:
            schedule = StepSchedule(self.watch_step_ms, self.watch_warm_seconds)
            async for paths in change_batches(root, stop, schedule):
                arrived = time.monotonic()
                jobs: set[str] = set()
                histories: set[str] = set()
                for path in paths:
                    match self.layout.role_of(path):
                        case (job_id, "progress" | "dir"):
                            jobs.add(job_id)
                        case (job_id, "history"):
                            histories.add(job_id)
                        case None if path == root:
                            stop.set()
                    # Anything else in a job directory (a writer's temp file...) changes nothing.
                # History first: a trainer appends its last entries before its final state,
                # and a client should get them before the close that follows that state.
                # A job whose history is still being read (a large append) has its state held
                # until that history is read up to here; other jobs go on meanwhile.
                for job_id in histories:
                    self.histories.read_new(job_id)
                for job_id in jobs:
                    self.histories.refresh_after(job_id, arrived)
        finally:
            guard.cancel()
            await asyncio.wait([guard])

    async def _guard_root(self, root_id: tuple[int, int], stop: threading.Event) -> None:
        """Stop the watch when the root goes or is replaced; rescan now and then meanwhile."""
        # The watch is in place by the time this first runs: this scan catches what changed
        # between the scan before it and the watch.
        await self.reconcile()
        next_scan = time.monotonic() + self.rescan_interval
        while _root_id(self.layout.root) == root_id:
            await asyncio.sleep(ROOT_CHECK_INTERVAL)
            if time.monotonic() >= next_scan:
                await self.reconcile()
                next_scan = time.monotonic() + self.rescan_interval
        stop.set()

    async def _poll(self, root_id: tuple[int, int]) -> None:
        while _root_id(self.layout.root) == root_id:
            await asyncio.sleep(self.poll_interval)
            await self.reconcile()


def _root_id(root: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(root)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None
