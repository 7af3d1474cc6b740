"""Reading one job's progress file and publishing what the read means.

The source's memory of each job lives here: what it last published (so that a bad read keeps
the last good state without asking the hub), the file's signature (so that a scan can tell what
changed), the re-reads under way and the reasons already logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from sidecar.core.contract import clamp_time
from sidecar.core.events import JobGone, JobSeen, Sink
from sidecar.files import read_rules
from sidecar.files.layout import FileSignature, JobLayout
from sidecar.files.read_rules import Keep, Known, Publish, Remove, Retry
from sidecar.files.reader import DEFAULT_MAX_BYTES, Document, Missing, Unreadable, read_progress
from sidecar.files.stats import WatchStats

logger = logging.getLogger(__name__)


class JobReader:
    """Reads jobs' files on demand and hands the outcome to a sink.

    Args:
        layout: where the files lie.
        sink: where events go.
        origin: the node name the events carry.
        stats: where reads are counted.
        max_file_bytes: larger progress files are refused.
        clock: POSIX time, for jobs first seen without a readable file.
        on_forget: called with a job id when the job goes (its history is not followed then).
    """

    def __init__(
        self,
        layout: JobLayout,
        sink: Sink,
        *,
        origin: str,
        stats: WatchStats,
        max_file_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.time,
        on_forget: Callable[[str], None] = lambda job_id: None,
    ) -> None:
        self.layout = layout
        self.sink = sink
        self.origin = origin
        self.stats = stats
        self.max_file_bytes = max_file_bytes
        self._clock = clock
        self._on_forget = on_forget
        self.known: dict[str, Known] = {}
        """What was last published of each job."""
        self.seen: dict[str, FileSignature | None] = {}
        """The signature of each job's file as last read (None: the job has no file)."""
        self.retries: dict[str, asyncio.TimerHandle] = {}
        """Re-reads of a bad file under way."""
        self._reported: dict[str, str] = {}

    def refresh(self, job_id: str, *, attempt: int = 0, arrived: float | None = None) -> None:
        """Read one job's file now and publish what it means.

        Args:
            job_id: the job.
            attempt: how many re-reads of a bad file came before this one.
            arrived: when the event behind this read reached the sidecar (monotonic clock).
        """
        result = read_progress(
            self.layout.file_for(job_id), root=self.layout.root, max_bytes=self.max_file_bytes
        )
        self.stats.file_reads += 1
        # A new event starts the re-reads of a bad file over: its writer is still at work.
        if attempt == 0 and (pending := self.retries.pop(job_id, None)) is not None:
            pending.cancel()
        dir_mtime = None
        if not isinstance(result, Document):  # the rules look at the directory only then
            job_dir = self.layout.dir_for(job_id)
            dir_mtime = self._dir_mtime(job_dir) if job_dir is not None else None
        decision = read_rules.decide(
            result,
            known=self.known.get(job_id),
            attempt=attempt,
            dir_mtime=dir_mtime,
            now=self._clock(),
        )
        match decision:
            case Publish():
                self._note(job_id, result, decision)
                self._publish(job_id, decision, arrived)
            case Retry(delay=delay, pending=first):
                if first is not None:
                    self._publish(job_id, first, None)
                self.stats.rereads += 1
                loop = asyncio.get_running_loop()
                self.retries[job_id] = loop.call_later(delay, self._retry, job_id, attempt + 1)
            case Remove():
                logger.info("job %s: removed", job_id)
                self._forget(job_id)
                self.sink(JobGone(self.origin, job_id))
            case Keep():
                if job_id not in self.known:
                    self._forget(job_id)
                else:
                    self.seen[job_id] = None

    def found_pending(self, job_id: str, *, dir_mtime: float) -> None:
        """A job a scan has just found without a file (its directory's mtime as the scan saw
        it), and that was not known: published as pending with no more look at the disk. (A
        file made since comes with its own event, or at the next scan.)"""
        if job_id in self.known:
            self.refresh(job_id)
            return
        decision = Publish(read_rules.PENDING, clamp_time(dir_mtime), has_file=False)
        self._note(job_id, Missing(), decision)
        self._publish(job_id, decision, None)

    def _note(self, job_id: str, result: object, decision: Publish) -> None:
        """Keep the file's signature, and log what changed in what a read says (once)."""
        if isinstance(result, Document):
            self.seen[job_id] = result.signature
            if self._reported.pop(job_id, None) is not None:
                logger.info("job %s: progress file readable again", job_id)
            return
        if decision.read_error is None:  # pending: a directory without a file
            self.seen[job_id] = None
            if job_id not in self.known:
                logger.info("job %s: found, pending", job_id)
            return
        path = self.layout.file_for(job_id)
        try:
            self.seen[job_id] = FileSignature.of(path.lstat())
        except OSError:
            self.seen.pop(job_id, None)
        kind = result.kind if isinstance(result, Unreadable) else "missing"
        self.stats.read_errors[kind] += 1
        if self._reported.get(job_id) != decision.read_error:
            self._reported[job_id] = decision.read_error
            logger.warning(
                "job %s: %s: %s; keeping the last good state", job_id, path, decision.read_error
            )

    def _publish(self, job_id: str, decision: Publish, arrived: float | None) -> None:
        self.known[job_id] = Known(decision.document, decision.modified_at, decision.has_file)
        self.sink(
            JobSeen(
                self.origin,
                job_id,
                decision.document,
                decision.modified_at,
                has_file=decision.has_file,
                read_error=decision.read_error,
                arrived=arrived,
            )
        )

    def _forget(self, job_id: str) -> None:
        self.known.pop(job_id, None)
        self.seen.pop(job_id, None)
        self._reported.pop(job_id, None)
        self._on_forget(job_id)

    def _retry(self, job_id: str, attempt: int) -> None:
        self.retries.pop(job_id, None)
        self.refresh(job_id, attempt=attempt)

    def _dir_mtime(self, path: Path) -> float | None:
        """The mtime of a job directory; None if it is not one (a symlink is not)."""
        st = self.layout.lstat(path)
        if not isinstance(st, os.stat_result) or not stat.S_ISDIR(st.st_mode):
            return None
        return clamp_time(st.st_mtime)
