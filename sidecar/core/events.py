"""What sources tell the hub: plain, serialisable events, each naming its job and its origin.

A source (the file watcher; a message bus later) turns what it sees into these and hands them to
a ``Sink``; it keeps what it needs of its own and never reads the hub back. Stall is not a
source's business: the hub derives it from the facts here (when the job last changed, and the
trainer's pid and host in its document).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sidecar.core.codec import JSONObject
from sidecar.core.state import JobState


@dataclass(frozen=True, slots=True)
class JobSeen:
    """A job as its source last read it.

    Args:
        origin: the node the job runs on.
        job_id: the job.
        document: the last good content of its progress file (``{"status": "pending"}`` while
            it has none).
        modified_at: POSIX mtime of what ``document`` came from.
        has_file: whether ``document`` came from a progress file.
        read_error: why the latest read failed (the document is the last good one); None.
        arrived: when the change reached the source (monotonic clock, this process only), for
            the event-to-send figure; None when unknown.
    """

    origin: str
    job_id: str
    document: JSONObject
    modified_at: float
    has_file: bool = True
    read_error: str | None = None
    arrived: float | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class JobGone:
    """The job no longer exists (its directory or file was removed)."""

    origin: str
    job_id: str


@dataclass(frozen=True, slots=True)
class HistoryLines:
    """Lines of a job's metrics history, each an encoded strict-JSON object.

    Args:
        reset: they replace all earlier ones (the file was replaced, or this is the first read).
        loaded: the source has now read what the file held when it started reading it.
    """

    origin: str
    job_id: str
    entries: tuple[bytes, ...]
    reset: bool = False
    loaded: bool = True


@dataclass(frozen=True, slots=True)
class JobPublished:
    """A job's state as its owner, another node's sidecar, published it through the bus: served
    as it is, under the owner's version name ``(epoch, seq)``; no rule of this sidecar's (stall)
    applies to it."""

    origin: str
    job_id: str
    state: JobState
    epoch: str
    seq: int


@dataclass(frozen=True, slots=True)
class NodeLost:
    """A node has been silent for the node timeout: its jobs not complete are shown stalled."""

    origin: str


@dataclass(frozen=True, slots=True)
class NodeBack:
    """A lost node is heard from again: its jobs are shown as it last published them."""

    origin: str


Event = JobSeen | JobGone | HistoryLines | JobPublished | NodeLost | NodeBack
Sink = Callable[[Event], None]
"""Where a source hands its events (the hub's ``apply``)."""


class HistoryInterest:
    """Which jobs' histories someone wants: the hub says so, sources listen. Histories nobody
    wants are never read; the history itself comes back as ``HistoryLines`` events."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[str], None]] = []
        self.wanted: set[str] = set()

    def listen(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(job_id)`` when a job's history is first wanted."""
        self._listeners.append(listener)

    def want(self, job_id: str) -> None:
        if job_id in self.wanted:
            return
        self.wanted.add(job_id)
        for listener in self._listeners:
            listener(job_id)

    def forget(self, job_id: str) -> None:
        """The job is gone: wanting its history again starts over."""
        self.wanted.discard(job_id)
