"""What sources tell the hub: plain, serialisable events, each naming its job and its origin.

A source (the file watcher; a message bus later) turns what it sees into these and hands them to
a ``Sink``; it keeps what it needs of its own and never reads the hub back. Stall is not a
source's business: the hub derives it from the facts here (when the job last changed, and the
trainer's pid and host in its document).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sidecar.core.codec import JSONObject, drop_nulls
from sidecar.core.state import PENDING_DOCUMENT, PROCESS_EXITED, JobState, with_stall

logger = logging.getLogger(__name__)


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

    def state(self, *, previous: JobState | None, now: float, stall_after: float) -> JobState:
        """The job's state after this read (its document's nulls dropped), the stall rule
        applied at ``now``, ``previous`` being the job's state before it."""
        document = self.document
        if document is not PENDING_DOCUMENT:  # shared by every pending job, and null-free
            document = drop_nulls(document)
        state = JobState(
            self.job_id,
            document,
            self.modified_at,
            has_file=self.has_file,
            read_error=self.read_error,
            node=self.origin,
        )
        # The stall clock found the trainer gone; a read that brings no new write changes that
        # not, until the next sweep looks again.
        exited = (
            previous is not None
            and previous.stall_reason == PROCESS_EXITED
            and previous.modified_at == state.modified_at
        )
        return with_stall(
            state, now=now, stall_after=stall_after, process_alive=False if exited else None
        )


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
    applies to it.

    Args:
        ordered: read in its owner's own order (its stream): it replaces the state shown unless
            it is the same version, whatever its ``seq`` (so that a forged one cannot pin a
            state). Otherwise (read back from where the latest states lie) an older ``seq`` of
            the same epoch than the one shown is ignored.
    """

    origin: str
    job_id: str
    state: JobState
    epoch: str
    seq: int
    ordered: bool = False


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


class GuardedSink:
    """A sink that never raises into its source: an event the hub cannot take costs that
    event only (logged with its traceback once per event kind and error, counted), and the
    source goes on with the next.

    Args:
        sink: the hub's ``apply``.
        source: the source's name, for the log.
    """

    def __init__(self, sink: Sink, *, source: str) -> None:
        self._sink = sink
        self.source = source
        self.refused = 0
        """Events the hub raised on."""
        self._said: set[tuple[str, str]] = set()

    def __call__(self, event: Event) -> None:
        try:
            self._sink(event)
        except Exception as e:
            self.refused += 1
            key = (type(event).__name__, type(e).__name__)
            job = getattr(event, "job_id", None)
            whose = f"job {job}" if job is not None else f"node {event.origin}"
            if key not in self._said:
                self._said.add(key)
                logger.error(
                    "%s: %s of %s not taken (%s); the source goes on",
                    self.source,
                    key[0],
                    whose,
                    type(e).__name__,
                    exc_info=True,
                )
            else:
                logger.debug("%s: %s of %s not taken again", self.source, key[0], whose)


class HistoryInterest:
    """Which jobs' histories someone wants: the hub says so, sources listen. Histories nobody
    wants are never read, and one nobody wants any more is no longer followed; the history
    itself comes back as ``HistoryLines`` events."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[str], None]] = []
        self._unwanted_listeners: list[Callable[[str], None]] = []
        self.wanted: set[str] = set()

    def listen(
        self, listener: Callable[[str], None], *, unwanted: Callable[[str], None] | None = None
    ) -> None:
        """Call ``listener(job_id)`` when a job's history is first wanted (or wanted again),
        and ``unwanted(job_id)`` when nobody wants it any more: stop following it."""
        self._listeners.append(listener)
        if unwanted is not None:
            self._unwanted_listeners.append(unwanted)

    def want(self, job_id: str) -> None:
        if job_id in self.wanted:
            return
        self.wanted.add(job_id)
        for listener in self._listeners:
            listener(job_id)

    def forget(self, job_id: str) -> None:
        """The job is gone: wanting its history again starts over."""
        self.wanted.discard(job_id)

    def unwant(self, job_id: str) -> None:
        """Nobody wants the job's history any more (the hub released it): sources stop following
        it, and wanting it again starts over, with a read of all of it."""
        if job_id not in self.wanted:
            return
        self.wanted.discard(job_id)
        for listener in self._unwanted_listeners:
            listener(job_id)
