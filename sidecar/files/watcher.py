"""The file side: watch the jobs root, read what changed, hand new states to the hub."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sidecar.core import state as job_state
from sidecar.core.hub import JobHub
from sidecar.files.fstype import detect_network_filesystem
from sidecar.files.history_file import HistoryTail
from sidecar.files.layout import FileSignature, JobLayout
from sidecar.files.notify import DEFAULT_HOT_STEP_MS, change_batches
from sidecar.files.reader import Document, Missing, Unreadable, read_progress
from sidecar.files.stats import WatchStats

logger = logging.getLogger(__name__)

ROOT_CHECK_INTERVAL = 0.25
# A writer that truncates and then writes in place is caught between the two; these are the
# pauses before each re-read of a file that did not parse, in seconds.
TORN_READ_RETRIES = (0.002, 0.005, 0.010, 0.020)
# Between two slices of a long history, the event loop idles this long (seconds): the inotify
# thread gets the GIL back and other jobs' events go first (sleep(0) let them wait for a slice
# at each of their steps: 24 ms instead of 8 at worst in the history-flood benchmark, with
# slices of 256 lines).
HISTORY_PAUSE = 0.001


class FileWatcher:
    """Keeps the hub in step with the progress files under a root.

    Args:
        layout: where the files lie.
        hub: where states go.
        poll: always find changes by stat every ``poll_interval`` instead of inotify (the
            watcher also polls, on its own, when the root is on a network filesystem).
        poll_interval: seconds between two polls.
        rescan_interval: seconds between two reconciliation scans while on inotify.
        stall_after: seconds without change after which a running job is stalled.
        max_file_bytes: larger progress files are refused.
        watch_step_ms: the quiet time, in ms, that ends a batch of events while they flow.
    """

    def __init__(
        self,
        layout: JobLayout,
        hub: JobHub,
        *,
        poll: bool = False,
        poll_interval: float = 0.25,
        rescan_interval: float = 5.0,
        stall_after: float = 60.0,
        max_file_bytes: int = 1 << 20,
        watch_step_ms: int = DEFAULT_HOT_STEP_MS,
        clock: Callable[[], float] = time.time,
        detect_filesystem: Callable[[Path], str | None] = detect_network_filesystem,
    ) -> None:
        self.layout = layout
        self.hub = hub
        self.poll = poll
        self.poll_interval = poll_interval
        self.rescan_interval = rescan_interval
        self.stall_after = stall_after
        self.max_file_bytes = max_file_bytes
        self.watch_step_ms = watch_step_ms
        self._clock = clock
        self._detect_filesystem = detect_filesystem
        self.polling = poll
        self.mode_reason = "--poll" if poll else "not started"
        self._seen: dict[str, FileSignature | None] = {}
        self._retries: dict[str, asyncio.TimerHandle] = {}
        self._reported: dict[str, str] = {}
        self._tails: dict[str, HistoryTail] = {}
        self._pumps: dict[str, asyncio.Task[None]] = {}
        """Jobs with more history to read than one slice: a task reads on, slice by slice."""
        self._held: dict[str, tuple[float | None, int]] = {}
        """Refreshes held, by job: when the event arrived, and where the job's history ended
        then. Each waits until the history is read that far, so that a final state never
        overtakes the last entries."""
        self._links_said: set[Path] = set()
        self.stats = WatchStats()
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
            pumps = list(self._pumps.values())
            for pump in pumps:
                pump.cancel()
            if pumps:
                await asyncio.wait(pumps)

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
        for job_id in list(self._tails):
            self.tail_history(job_id)
        # Jobs whose file is being read again after a bad read are left to those re-reads:
        # a scan every poll would start them over and over.
        for job_id, entry in found.items():
            if job_id in self._retries:
                continue
            if job_id not in self.hub or self._seen.get(job_id) != entry.file:
                self._refresh_after_history(job_id)
        for job_id in [j for j in self._seen if j not in found and j not in self._retries]:
            self._refresh_after_history(job_id)

    def load_history(self, job_id: str) -> asyncio.Task[None] | None:
        """Start following a job's metrics.jsonl: its first slice now, the rest from a task.

        Returns:
            That task while it reads what the file holds (None once all is read): the
            history is loaded when it ends.
        """
        if job_id not in self.hub:
            return None
        if job_id not in self._tails:
            self._tails[job_id] = HistoryTail(
                self.layout.root,
                self.layout.history_for(job_id),
                job_id,
                max_entries=self.hub.max_history,
            )
            self._read_history(job_id, reset=True)
        return self._pumps.get(job_id)

    def tail_history(self, job_id: str) -> None:
        """Hand what was appended to a followed job's metrics.jsonl to the hub: a slice now, the
        rest (if any) from a task that lets other jobs' events in between its slices."""
        if job_id in self._tails and job_id not in self._pumps:
            self._read_history(job_id)

    def _read_history(self, job_id: str, *, reset: bool = False) -> bool:
        """Read one slice of a job's history into the hub; start its pump if more waits."""
        read = self._tails[job_id].read()
        if read.entries or read.reset or reset:
            self.hub.extend_history(job_id, read.entries, reset=read.reset or reset)
        if read.more and job_id not in self._pumps:
            self._pumps[job_id] = asyncio.create_task(
                self._pump_history(job_id), name=f"history {job_id}"
            )
        return read.more

    async def _pump_history(self, job_id: str) -> None:
        """Read a job's history a slice at a time until none waits, yielding between slices."""
        try:
            more = True
            while more:
                await asyncio.sleep(HISTORY_PAUSE)
                if job_id not in self._tails:
                    return
                more = self._read_history(job_id)
                self._release_held(job_id, done=not more)
        except Exception:
            logger.error("job %s: reading its history failed", job_id, exc_info=True)
            self._release_held(job_id, done=True)
        finally:
            if self._pumps.get(job_id) is asyncio.current_task():
                del self._pumps[job_id]

    def _release_held(self, job_id: str, *, done: bool) -> None:
        """Refresh a held job once its history is read far enough (or its pump is ``done``)."""
        held = self._held.get(job_id)
        tail = self._tails.get(job_id)
        if held is not None and (done or tail is None or tail.offset >= held[1]):
            del self._held[job_id]
            self.refresh(job_id, arrived=held[0])

    def _refresh_after_history(self, job_id: str, arrived: float | None = None) -> None:
        """``refresh`` now, or once the job's history is read up to where it ends now."""
        tail = self._tails.get(job_id)
        if tail is None or job_id not in self._pumps:
            self.refresh(job_id, arrived=arrived)
            return
        first_arrived = self._held[job_id][0] if job_id in self._held else arrived
        self._held[job_id] = (first_arrived, tail.end())

    def _stop_history(self, job_id: str) -> None:
        """Stop following a job's metrics.jsonl (the job is gone)."""
        self._tails.pop(job_id, None)
        self._held.pop(job_id, None)
        pump = self._pumps.pop(job_id, None)
        if pump is not None and pump is not asyncio.current_task():
            pump.cancel()

    def refresh(self, job_id: str, *, attempt: int = 0, arrived: float | None = None) -> None:
        """Read one job's file now and publish what it holds.

        Args:
            job_id: the job.
            attempt: how many re-reads of a bad file came before this one.
            arrived: when the event behind this read reached the sidecar (monotonic clock).
        """
        result = read_progress(
            self.layout.file_for(job_id), root=self.layout.root, max_bytes=self.max_file_bytes
        )
        self.stats.file_reads += 1
        current = self.hub.get(job_id)
        # A new event starts the re-reads of a bad file over: its writer is still at work.
        if attempt == 0 and (pending := self._retries.pop(job_id, None)) is not None:
            pending.cancel()
        if isinstance(result, Document):
            self._seen[job_id] = result.signature
            if self._reported.pop(job_id, None) is not None:
                logger.info("job %s: progress file readable again", job_id)
            self.hub.put(
                job_state.with_document(
                    job_id,
                    result.data,
                    modified_at=result.modified_at,
                    now=self._clock(),
                    stall_after=self.stall_after,
                ),
                arrived=arrived,
            )
        elif isinstance(result, Missing) and (current is None or not current.has_file):
            self._missing(job_id, current)
        elif attempt < len(TORN_READ_RETRIES):
            # Unreadable, or gone from a job that had one: a writer may be half-way through.
            if current is None:  # the job exists meanwhile: its file does
                self.hub.put(job_state.pending_state(job_id, modified_at=self._clock()))
            self.stats.rereads += 1
            delay = TORN_READ_RETRIES[attempt]
            loop = asyncio.get_running_loop()
            self._retries[job_id] = loop.call_later(delay, self._retry, job_id, attempt + 1)
        elif isinstance(result, Missing):
            self._vanished(job_id, current)
        else:
            self._unreadable(job_id, current, result)

    def _retry(self, job_id: str, attempt: int) -> None:
        self._retries.pop(job_id, None)
        self.refresh(job_id, attempt=attempt)

    def _missing(self, job_id: str, current: job_state.JobState | None) -> None:
        job_dir = self.layout.dir_for(job_id)
        dir_mtime = self._dir_mtime(job_dir) if job_dir is not None else None
        if dir_mtime is None:
            self._seen.pop(job_id, None)
            self._reported.pop(job_id, None)
            self._stop_history(job_id)
            if current is not None:
                logger.info("job %s: removed", job_id)
                self.hub.remove(job_id)
            return
        self._seen[job_id] = None
        if current is None or current.has_file:
            if current is None:
                logger.info("job %s: found, pending", job_id)
            self.hub.put(job_state.pending_state(job_id, modified_at=dir_mtime))

    def _vanished(self, job_id: str, current: job_state.JobState | None) -> None:
        """The file of a job that had one is gone: the job goes with its directory, or else
        keeps its last good state, marked."""
        job_dir = self.layout.dir_for(job_id)
        if job_dir is None or self._dir_mtime(job_dir) is None:
            self._missing(job_id, current)
        else:
            self._unreadable(job_id, current, Unreadable("progress file missing"))

    def _unreadable(
        self, job_id: str, current: job_state.JobState | None, result: Unreadable
    ) -> None:
        path = self.layout.file_for(job_id)
        try:
            self._seen[job_id] = FileSignature.of(path.lstat())
        except OSError:
            self._seen.pop(job_id, None)
        self.stats.read_errors[result.kind] += 1
        if self._reported.get(job_id) != result.reason:
            self._reported[job_id] = result.reason
            logger.warning(
                "job %s: %s: %s; keeping the last good state", job_id, path, result.reason
            )
        if current is None:
            current = job_state.pending_state(job_id, modified_at=self._clock())
        self.hub.put(job_state.with_read_error(current, result.reason))

    def _dir_mtime(self, path: Path) -> float | None:
        """The mtime of a job directory; None if it is not one (a symlink is not)."""
        st = self.layout.lstat(path)
        return st.st_mtime if isinstance(st, os.stat_result) and stat.S_ISDIR(st.st_mode) else None

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
            async for paths in change_batches(root, stop, hot_step_ms=self.watch_step_ms):
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
                    self.tail_history(job_id)
                for job_id in jobs:
                    self._refresh_after_history(job_id, arrived)
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
