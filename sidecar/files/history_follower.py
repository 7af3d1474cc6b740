"""The histories someone wants, followed: each job's metrics.jsonl read a slice at a time and
handed on as ``HistoryLines`` events.

A slice is read at once (so the few lines a trainer appends before its final state reach
clients before that state); if more waits, a task per job reads on, pausing between slices so
that other jobs' events go first. A refresh of a job whose history is still being read waits
until the history is read up to where the file ended when the refresh was asked for, so that a
final state never overtakes its last entries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sidecar.core.events import HistoryLines, Sink
from sidecar.files.history_file import HistoryFileReader
from sidecar.files.layout import JobLayout

logger = logging.getLogger(__name__)

HISTORY_PAUSE = 0.001
"""Seconds the event loop idles between two slices of a long history: the inotify thread gets
the GIL back and other jobs' events go first (``sleep(0)`` made them wait for a slice at each of
their steps: 24 ms instead of 8 at worst in the history-flood benchmark)."""

Refresh = Callable[[str, "float | None"], None]


class HistoryFollower:
    """Follows the histories of the jobs whose history was asked for.

    Args:
        layout: where the files lie.
        sink: where the lines go.
        origin: the node name the events carry.
        max_entries: the most lines worth reading of a long backlog.
        refresh: reads a job's progress file (held here while its history is being read).
    """

    def __init__(
        self, layout: JobLayout, sink: Sink, *, origin: str, max_entries: int, refresh: Refresh
    ) -> None:
        self.layout = layout
        self.sink = sink
        self.origin = origin
        self.max_entries = max_entries
        self._refresh = refresh
        self._tails: dict[str, HistoryFileReader] = {}
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self._held: dict[str, tuple[float | None, int]] = {}
        """Refreshes held, by job: when the event arrived, and where the history ended then."""

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._tails

    def start(self, job_id: str) -> None:
        """Follow a job's history: read its first slice now, the rest from a task."""
        if job_id in self._tails:
            return
        self._tails[job_id] = HistoryFileReader(
            self.layout.root,
            self.layout.history_for(job_id),
            job_id,
            max_entries=self.max_entries,
        )
        self._read(job_id, reset=True)

    def read_new(self, job_id: str) -> None:
        """Hand on what was appended to a followed history: a slice now, the rest (if any)
        from a task that lets other jobs' events in between its slices."""
        if job_id in self._tails and job_id not in self._pumps:
            self._read(job_id)

    def read_all_new(self) -> None:
        for job_id in list(self._tails):
            self.read_new(job_id)

    def refresh_after(self, job_id: str, arrived: float | None = None) -> None:
        """Refresh a job now, or once its history is read up to where it ends now."""
        tail = self._tails.get(job_id)
        if tail is None or job_id not in self._pumps:
            self._refresh(job_id, arrived)
            return
        first_arrived = self._held[job_id][0] if job_id in self._held else arrived
        self._held[job_id] = (first_arrived, tail.end())

    def stop(self, job_id: str, *, release_held: bool = False) -> None:
        """Stop following a job's history (the job is gone; or, with ``release_held``, nobody
        wants its history any more: a refresh it held is made now). Following it again reads
        the file from its start."""
        self._tails.pop(job_id, None)
        held = self._held.pop(job_id, None)
        pump = self._pumps.pop(job_id, None)
        if pump is not None and pump is not asyncio.current_task():
            pump.cancel()
        if release_held and held is not None:
            # Soon, not now: this is the hub letting the history go, and the refresh goes to it.
            asyncio.get_running_loop().call_soon(self._refresh, job_id, held[0])

    async def close(self) -> None:
        """Stop every task (the sidecar is stopping)."""
        pumps = list(self._pumps.values())
        for pump in pumps:
            pump.cancel()
        if pumps:
            await asyncio.wait(pumps)

    def _read(self, job_id: str, *, reset: bool = False) -> bool:
        """Read one slice and hand it on; start the job's pump if more waits."""
        read = self._tails[job_id].read()
        finished = not read.more and job_id in self._pumps  # a long read's end: say it is loaded
        if read.entries or read.reset or reset or finished:
            self.sink(
                HistoryLines(
                    self.origin,
                    job_id,
                    tuple(read.entries),
                    reset=read.reset or reset,
                    loaded=not read.more,
                )
            )
        if read.more and job_id not in self._pumps:
            self._pumps[job_id] = asyncio.create_task(self._pump(job_id), name=f"history {job_id}")
        return read.more

    async def _pump(self, job_id: str) -> None:
        """Read a job's history a slice at a time until none waits, yielding between slices."""
        try:
            more = True
            while more:
                await asyncio.sleep(HISTORY_PAUSE)
                if job_id not in self._tails:
                    return
                more = self._read(job_id)
                self._release_held(job_id, done=not more)
        except Exception:
            logger.error("job %s: reading its history failed", job_id, exc_info=True)
            self._release_held(job_id, done=True)
        finally:
            if self._pumps.get(job_id) is asyncio.current_task():
                del self._pumps[job_id]

    def _release_held(self, job_id: str, *, done: bool) -> None:
        held = self._held.get(job_id)
        tail = self._tails.get(job_id)
        if held is not None and (done or tail is None or tail.offset >= held[1]):
            del self._held[job_id]
            self._refresh(job_id, held[0])
