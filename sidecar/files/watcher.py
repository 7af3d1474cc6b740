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
    UndecodablePath,
    change_batches,
    inotify_blocked,
)
from sidecar.files.reader import DEFAULT_MAX_BYTES
from sidecar.files.rescan import poll_pause, refresh_differing, rescan_pause
from sidecar.files.root_hint import RootHint
from sidecar.files.stats import WatchStats

logger = logging.getLogger(__name__)

ROOT_CHECK_INTERVAL = 0.25
POLL_INTERVAL = 0.25
RESCAN_INTERVAL = 5.0
INOTIFY_RETRY = 30.0
"""Seconds between two tries of inotify while a name under the root keeps it from working."""


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
        rescan_interval: seconds between two reconciliation scans while on inotify, at least
            (after a scan that took long, ``rescan.rescan_pause``: 100 times what it took).
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
        self.rescan_pause = rescan_interval
        """The pause before the next rescan: ``rescan_interval``, or longer after a long scan."""
        self.watch_step_ms = watch_step_ms
        self.watch_warm_seconds = watch_warm_seconds
        self._detect_filesystem = detect_filesystem
        self.polling = poll
        self.mode_reason = "--poll" if poll else "not started"
        self._links_said: set[Path] = set()
        self._undecodable_said: set[str] = set()
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
            interest.listen(self._history_wanted, unwanted=self._history_unwanted)
        self.root_present = False
        self.root_hint = RootHint(layout)
        """Which ``--root`` was likely meant, when this one looks one level off."""
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
            except UndecodablePath as e:
                await self._poll_while_undecodable(root_id, str(e))
            except (OSError, RuntimeError) as e:
                # watchfiles raises when the root vanishes under it, among other things.
                logger.warning("watching %s failed (%s); starting over", root, e, exc_info=True)
                await asyncio.sleep(ROOT_CHECK_INTERVAL)
            self.root_present = _root_id(root) is not None
            if not self.root_present:
                logger.warning("jobs root %s is gone; waiting for it to come back", root)
            await self.reconcile()

    async def reconcile(self) -> float:
        """Compare every job on disk with what was last read, and refresh what differs (a
        slice at a time: ``rescan``); returns the seconds it took."""
        began = time.monotonic()
        try:
            scan = await asyncio.to_thread(self.layout.scan, known=self.jobs.known)
        except OSError as e:
            logger.warning("scan of %s failed: %s", self.layout.root, e)
            return time.monotonic() - began
        self.stats.scans += 1
        self.stats.scan_stats += scan.stats
        for link in scan.links:
            if link not in self._links_said:
                self._links_said.add(link)
                logger.warning(
                    "%s is a symlink (or lies behind one); not followed: the sidecar reads only "
                    "what lies under the jobs root (said once)",
                    link,
                )
        await self.root_hint.check(scan)
        # History first, as in _watch: a final state comes after the last entries.
        self.histories.read_all_new()
        await refresh_differing(scan, self.jobs, self.histories.refresh_after)
        return time.monotonic() - began

    def _history_wanted(self, job_id: str) -> None:
        if job_id in self.jobs.known:
            self.histories.start(job_id)

    def _history_unwanted(self, job_id: str) -> None:
        self.histories.stop(job_id, release_held=True)

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
        # A guard that fails ends the watch too (its error is raised below): a watch without
        # its rescans and its root check must not go on as if all were well.
        guard.add_done_callback(lambda _: stop.set())
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
        if not guard.cancelled() and (error := guard.exception()) is not None:
            raise error

    async def _guard_root(self, root_id: tuple[int, int], stop: threading.Event) -> None:
        """Stop the watch when the root goes or is replaced; rescan now and then meanwhile."""
        # The watch is in place by the time this first runs: this scan catches what changed
        # between the scan before it and the watch.
        next_scan = 0.0
        while _root_id(self.layout.root) == root_id:
            if time.monotonic() >= next_scan:
                took = await self.reconcile()
                self.rescan_pause = rescan_pause(took, floor=self.rescan_interval)
                next_scan = time.monotonic() + self.rescan_pause
            await asyncio.sleep(ROOT_CHECK_INTERVAL)
        stop.set()

    async def _poll(self, root_id: tuple[int, int], *, retry_inotify: bool = False) -> None:
        """Poll while the root stays; with ``retry_inotify``, also try inotify again every
        ``INOTIFY_RETRY``, and return once it works."""
        retry_at, took = time.monotonic() + INOTIFY_RETRY, 0.0
        while _root_id(self.layout.root) == root_id:
            await asyncio.sleep(poll_pause(took, floor=self.poll_interval))
            took = await self.reconcile()
            if retry_inotify and time.monotonic() >= retry_at:
                if await asyncio.to_thread(inotify_blocked, str(self.layout.root)) is None:
                    logger.info("watching %s by inotify again", self.layout.root)
                    return
                retry_at = time.monotonic() + INOTIFY_RETRY

    async def _poll_while_undecodable(self, root_id: tuple[int, int], why: str) -> None:
        """Poll while inotify cannot watch the root (a name under it is not UTF-8: anyone who
        may write under the root can make one), trying it again every ``INOTIFY_RETRY``."""
        self.polling = True
        self.mode_reason = "a name under the root is not utf-8: inotify cannot report it"
        if why not in self._undecodable_said:
            self._undecodable_said.add(why)
            logger.warning(
                "watching %s by inotify failed (%s): polling every %g s instead, and trying "
                "inotify again every %g s (said once per path)",
                self.layout.root,
                why,
                self.poll_interval,
                INOTIFY_RETRY,
            )
        await self._poll(root_id, retry_inotify=True)


def _root_id(root: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(root)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None
