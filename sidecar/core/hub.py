"""The job hub: current state per job, versioned, and the subscriptions that follow it.

Sources hand it events (``apply``: a job seen, a job gone, history lines) and never read it
back; it derives each job's state from them, stall included (``sweep`` re-applies the stall
rule as time passes). Connections ``subscribe`` and read ``Subscription.version`` whenever
``wait`` returns. Each version is diffed and serialised once, and the same bytes serve every
client that is up to date: written at once to those whose connection is idle
(``Subscription.direct``, as the websockets library's ``broadcast`` does), through their own
sender otherwise. Backpressure policy: a subscription holds no queue, only a wake-up flag, so a
slow client skips intermediate states and gets one patch from what it last saw to the latest.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Iterator

from sidecar.core import protocol
from sidecar.core.codec import JSONObject, decode_document, drop_nulls, encode
from sidecar.core.events import (
    Event,
    HistoryInterest,
    HistoryLines,
    JobGone,
    JobPublished,
    JobSeen,
    NodeBack,
    NodeLost,
)
from sidecar.core.history_budget import HISTORY_BYTES, HISTORY_GRACE, HistoryBudget
from sidecar.core.history_log import DEFAULT_MAX_ENTRIES, HistoryLog
from sidecar.core.job_index import JobIndex
from sidecar.core.kept_versions import (
    RESUME_BYTES,
    RESUME_BYTES_PER_JOB,
    RESUME_DEPTH,
    KeptVersions,
)
from sidecar.core.listing import encoded_summary
from sidecar.core.patch import json_equal
from sidecar.core.state import (
    NODE_LOST,
    PENDING_DOCUMENT,
    PROCESS_EXITED,
    JobState,
    with_stall,
)
from sidecar.core.subscription import Channel, JobsWatch, Subscription
from sidecar.core.version import DirectSend, Version, VersionId, new_epoch

__all__ = [
    "RESUME_DEPTH",
    "DirectSend",
    "JobHub",
    "JobsWatch",
    "ProcessCheck",
    "Subscription",
    "TooManyClients",
    "UnknownJob",
    "Version",
]

MAX_CLIENTS = 1000
MAX_CLIENTS_PER_JOB = 10
MAX_CLIENTS_PER_ADDRESS = 5
STALL_AFTER = 60.0
"""The defaults (the server's settings take them from here)."""
LOST_SUFFIX = "-lost"
"""Ends the epoch of a version shown while its node is lost: the owner's version, stalled."""

logger = logging.getLogger(__name__)

ProcessCheck = Callable[[JobState], "bool | None"]
"""Whether the trainer process a job's document names still runs; None when unknowable."""


class UnknownJob(LookupError):
    """No job with that id."""


class TooManyClients(RuntimeError):
    """A client limit is reached; the message says which."""


class JobHub:
    """Every job's state, and the clients that follow each.

    Args:
        max_clients: subscriptions allowed in all.
        max_clients_per_job: subscriptions allowed on one job.
        max_clients_per_address: subscriptions allowed on one job from one address, so that
            one client cannot take a job's whole quota.
        max_history: history entries kept per job (the oldest go first).
        history_bytes: what the histories held weigh in all jobs together (``HistoryBudget``).
        history_grace: seconds a history nobody follows is held after its last use.
        resume_bytes_per_job: bytes of one job's versions kept to resume clients from.
        resume_bytes: bytes of the versions kept in all jobs together (``KeptVersions``).
        stall_after: seconds without a change after which a running job is stalled.
        clock: POSIX time, for the stall rule and the histories' grace.
        node: this sidecar's node name: the jobs its own sources see are this node's.
        epoch: the numbering of this sidecar's versions (a fresh one by default).
    """

    def __init__(
        self,
        *,
        max_clients: int = MAX_CLIENTS,
        max_clients_per_job: int = MAX_CLIENTS_PER_JOB,
        max_clients_per_address: int = MAX_CLIENTS_PER_ADDRESS,
        max_history: int = DEFAULT_MAX_ENTRIES,
        history_bytes: int = HISTORY_BYTES,
        history_grace: float = HISTORY_GRACE,
        resume_bytes_per_job: int = RESUME_BYTES_PER_JOB,
        resume_bytes: int = RESUME_BYTES,
        stall_after: float = STALL_AFTER,
        clock: Callable[[], float] = time.time,
        node: str = "local",
        epoch: str | None = None,
    ) -> None:
        self.node = node
        self.epoch = epoch if epoch is not None else new_epoch()
        self._channels: dict[str, Channel] = {}
        self._lost_nodes: set[str] = set()
        self._conflicts: set[tuple[str, str]] = set()
        self._seq = itertools.count(1)
        self._clients = 0
        self._jobs_watches: set[JobsWatch] = set()
        self._watch_addresses: collections.Counter[str | None] = collections.Counter()
        self._loaded: dict[str, asyncio.Event] = {}
        self._index = JobIndex()
        self.max_clients = max_clients
        self.max_clients_per_job = max_clients_per_job
        self.max_clients_per_address = max_clients_per_address
        self.max_history = max_history
        self.stall_after = stall_after
        self._clock = clock
        self.last_change = 0.0
        """When (monotonic clock) a job last got a new version."""
        self.history_interest = HistoryInterest()
        """Where sources learn whose history someone wants (histories nobody asks for cost
        nothing); they answer with ``HistoryLines`` events."""
        self.histories = HistoryBudget(total_bytes=history_bytes, grace=history_grace)
        """The histories held, on their budget."""
        self._history_readers: collections.Counter[str] = collections.Counter()
        """REST requests reading a job's history now."""
        self._publishers = 0
        """Watches of every job's history (``watch_all``: a cluster node's publisher)."""
        # The current version is resumed from as it is: only the ones before it are kept.
        self.kept_versions = KeptVersions(
            depth=RESUME_DEPTH - 1, job_bytes=resume_bytes_per_job, total_bytes=resume_bytes
        )
        """The versions before the current ones, kept to resume clients from."""

    def __len__(self) -> int:
        return len(self._channels)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._channels

    @property
    def client_count(self) -> int:
        return self._clients

    def get(self, job_id: str) -> JobState | None:
        channel = self._channels.get(job_id)
        return channel.state if channel is not None else None

    def version(self, job_id: str) -> Version | None:
        channel = self._channels.get(job_id)
        return channel.version if channel is not None else None

    def states(self) -> Iterator[JobState]:
        return (channel.state for channel in self._channels.values())

    def job_ids(self) -> list[str]:
        """Every job id, sorted: a list never changed once returned (do not change it)."""
        return self._index.ordered()

    def listed(self, job_id: str) -> bytes | None:
        """A job's summary in the jobs list, encoded (``encoded_summary``) once per state;
        None for an unknown job."""
        channel = self._channels.get(job_id)
        if channel is None:
            return None
        if channel.listed is None or channel.listed_of is not channel.state:
            channel.listed = encoded_summary(channel.state)
            channel.listed_of = channel.state
        return channel.listed

    @property
    def stall_candidates(self) -> frozenset[str]:
        """The jobs a sweep looks at: this node's own, with a file, not complete."""
        return frozenset(self._index.stall_candidates)

    def apply(self, event: Event) -> None:
        """Take one event from a source: the one way sources change the hub."""
        if isinstance(event, NodeLost | NodeBack):
            self._node_seen(event.origin, lost=isinstance(event, NodeLost))
        elif not self._owned_by(event.origin, event.job_id):
            return
        elif isinstance(event, JobSeen):
            self._take_back(event.job_id)
            self.put(self._state_of(event), arrived=event.arrived)
        elif isinstance(event, JobPublished):
            self._put_published(event)
        elif isinstance(event, JobGone):
            self.remove(event.job_id)
        else:
            self._extend_history(event)

    def _owned_by(self, origin: str, job_id: str) -> bool:
        """Whether ``origin`` owns the job (or may: no node has it yet). Job ids are the training
        server's to keep unique; when two nodes have the same, the first one seen keeps it."""
        channel = self._channels.get(job_id)
        if channel is None or channel.state.node == origin:
            return True
        # A node always serves its own job: its JobSeen takes the id back.
        mine = origin == self.node and channel.published is not None
        other, kept = (channel.state.node, origin) if mine else (origin, channel.state.node)
        if (job_id, other) not in self._conflicts:
            self._conflicts.add((job_id, other))
            logger.warning(
                "job %s: node %s has a job of that id too; serving node %s's only (job ids must "
                "be unique across the cluster)",
                job_id,
                other,
                kept,
            )
        return mine

    def _take_back(self, job_id: str) -> None:
        """This node's own job takes its id back from another node's job that had it."""
        channel = self._channels.get(job_id)
        if channel is None or channel.published is None:
            return
        channel.published = None
        channel.history = None
        self.histories.forget(job_id)
        self.history_interest.forget(job_id)
        if any(subscription.history for subscription in channel.subscribers):
            self.history(job_id)

    def _state_of(self, event: JobSeen) -> JobState:
        document = event.document
        if document is not PENDING_DOCUMENT:  # shared by every pending job, and null-free
            document = drop_nulls(document)
        state = JobState(
            event.job_id,
            document,
            event.modified_at,
            has_file=event.has_file,
            read_error=event.read_error,
            node=event.origin,
        )
        previous = self.get(event.job_id)
        # The stall clock found the trainer gone; a read that brings no new write changes that
        # not, until the next sweep looks again.
        exited = (
            previous is not None
            and previous.stall_reason == PROCESS_EXITED
            and previous.modified_at == state.modified_at
        )
        return with_stall(
            state,
            now=self._clock(),
            stall_after=self.stall_after,
            process_alive=False if exited else None,
        )

    def sweep(self, *, process_alive: ProcessCheck | None = None) -> int:
        """Apply the stall rule to every job it can change now (``stall_candidates``: a sweep
        costs what they number, not what all jobs do); returns how many changed.

        Args:
            process_alive: checks whether a job's trainer process still runs (for the jobs
                with a file that are not complete); None checks none.
        """
        now = self._clock()
        changed = []
        for job_id in self._index.stall_candidates:
            channel = self._channels[job_id]
            if channel.published is not None:
                continue  # another node's job: its owner applies the rule
            state = channel.state
            alive = None
            if process_alive is not None and state.has_file and not state.complete:
                alive = process_alive(state)
            new = with_stall(state, now=now, stall_after=self.stall_after, process_alive=alive)
            if new is not state:
                changed.append(new)
        for state in changed:
            self.put(state)
        return len(changed)

    def put(
        self, state: JobState, *, arrived: float | None = None, name: VersionId | None = None
    ) -> None:
        """Make ``state`` the job's current state; clients are told if what they see changed.

        Args:
            state: the job's new state.
            arrived: when the change reached the sidecar (monotonic clock); now by default.
            name: the version's ``(epoch, seq)``, as the job's owner named it; by default the
                next of this sidecar's own.
        """
        channel = self._channels.get(state.job_id)
        body = state.body()
        if channel is None:
            version = self._version(body, None, name)
            channel = self._channels[state.job_id] = Channel(state.job_id, state, version)
            self._index.added(state.job_id)
            self._index.note(state.job_id, state, own=channel.published is None)
            self._touch(state.job_id)
            return
        channel.state = state
        self._index.note(state.job_id, state, own=channel.published is None)
        if json_equal(channel.version.body, body) and (name is None or name == channel.version.id):
            return
        self._touch(state.job_id)
        previous = channel.version
        version = channel.version = self._version(body, previous, name)
        self.last_change = version.created  # made now (before ``arrived`` may replace it)
        self._keep(state.job_id, previous)
        if arrived is not None:
            version.created = arrived
        for subscription in channel.subscribers:
            # The broadcast fast path: a client that is up to date and idle gets the shared
            # patch written at once; any other is woken, and its sender catches it up.
            if (
                subscription.direct is not None
                and not subscription.busy
                and subscription.sent is previous
                and not previous.complete  # its close waits its turn: nothing more goes out
                and subscription.direct(version, previous)
            ):
                subscription.sent = version
                if not version.complete:
                    continue
                if subscription.close_turn is not None:
                    # Only the close is left, and it may wait: the final message is out.
                    subscription.close_turn(subscription.wake)
                    continue
            subscription.wake()

    def _version(
        self, body: JSONObject, previous: Version | None, name: VersionId | None
    ) -> Version:
        epoch, seq = name if name is not None else (self.epoch, next(self._seq))
        return Version(seq, body, previous, epoch=epoch)

    def _keep(self, job_id: str, version: Version) -> None:
        """Remember a version the job just left (its body encoded: a tenth of the memory) to
        resume clients from."""
        self.kept_versions.keep(job_id, version.id, encode(version.body))

    def resume_base(self, job_id: str, since: VersionId) -> JSONObject | None:
        """The body of the job's version ``since``: the current one, or one of the last
        ``RESUME_DEPTH`` still within the byte budgets (``kept_versions``)."""
        channel = self._channels.get(job_id)
        if channel is None:
            return None
        if channel.version.id == since:
            return channel.version.body
        body = self.kept_versions.find(job_id, since)
        if body is None:
            return None
        base: JSONObject = decode_document(body)
        return base

    def _put_published(self, event: JobPublished) -> None:
        channel = self._channels.get(event.job_id)
        if channel is not None and channel.published is not None:
            epoch, seq = channel.published[1]
            if epoch == event.epoch and event.seq <= seq:
                return  # an older version (a replay, or a republication): never go back
        if event.origin == self.node or (channel is not None and channel.published is None):
            return  # this node's own job: its own file is the truth
        state = dataclasses.replace(event.state, node=event.origin, job_id=event.job_id)
        self._show_published(state, (event.epoch, event.seq))

    def _show_published(self, state: JobState, name: VersionId) -> None:
        if state.node in self._lost_nodes and not state.complete:
            shown = dataclasses.replace(state, stall_reason=NODE_LOST)
            self.put(shown, name=(name[0] + LOST_SUFFIX, name[1]))
        else:
            self.put(state, name=name)
        channel = self._channels[state.job_id]
        channel.published = (state, name)
        self._index.note(state.job_id, channel.state, own=False)

    def _node_seen(self, node: str, *, lost: bool) -> None:
        if lost == (node in self._lost_nodes):
            return
        if lost:
            self._lost_nodes.add(node)
        else:
            self._lost_nodes.discard(node)
        for channel in list(self._channels.values()):
            if channel.published is not None and channel.state.node == node:
                self._show_published(*channel.published)

    @property
    def lost_nodes(self) -> frozenset[str]:
        return frozenset(self._lost_nodes)

    def stranded_nodes(self) -> set[str]:
        """The lost nodes that own a job not complete (a node gone with nothing running is no
        one's concern)."""
        return {
            state.node
            for state in self.states()
            if state.node in self._lost_nodes and not state.complete
        }

    def remove(self, job_id: str) -> None:
        """Forget a job; its subscriptions see ``version`` None."""
        channel = self._channels.pop(job_id, None)
        if channel is not None:
            self._index.removed(job_id)
        self._conflicts = {c for c in self._conflicts if c[0] != job_id}
        self.history_interest.forget(job_id)
        self._loaded.pop(job_id, None)
        self.histories.forget(job_id)
        self.kept_versions.forget(job_id)
        if channel is None:
            return
        channel.removed = True
        for subscription in channel.subscribers:
            subscription.wake()
        self._touch(job_id)

    def watch_all(self) -> JobsWatch:
        """Follow every job's changes and history, as a part of the sidecar does (the bus's
        publisher), not a client: no limit applies. Stop with ``unwatch_jobs``."""
        watch = JobsWatch(self._channels, history=True)
        self._jobs_watches.add(watch)
        self._publishers += 1
        return watch

    def watch_jobs(self, *, address: str | None = None) -> JobsWatch:
        """Follow every job's comings, goings and changes (the dashboard's list), from
        ``address`` (the list counts as one more job against ``max_clients_per_address``).
        The watch holds what changes from now on: the client starts from every job
        (``job_ids``), with no set of 100,000 ids made at each connection.

        Raises:
            TooManyClients: a client limit is reached.
        """
        if self._clients >= self.max_clients:
            raise TooManyClients(protocol.TOO_MANY_CLIENTS.reason)
        if address is not None and self._watch_addresses[address] >= self.max_clients_per_address:
            raise TooManyClients(protocol.TOO_MANY_JOBS_LIST_CLIENTS_FROM_ADDRESS.reason)
        watch = JobsWatch((), address)
        self._jobs_watches.add(watch)
        self._clients += 1
        if address is not None:
            self._watch_addresses[address] += 1
        return watch

    def unwatch_jobs(self, watch: JobsWatch) -> None:
        if watch in self._jobs_watches:
            self._jobs_watches.remove(watch)
            if watch.history_changed is not None:
                # The publisher followed every history of this node's jobs: their grace starts.
                self._publishers -= 1
                for job_id in list(self.history_interest.wanted):
                    self.histories.used(job_id, self._clock())
                return  # not a client
            self._clients -= 1
            _release(self._watch_addresses, watch.address)

    def _touch(self, job_id: str) -> None:
        for watch in self._jobs_watches:
            watch.changed.add(job_id)
            watch.wake.set()

    def history(self, job_id: str) -> HistoryLog | None:
        """A job's history as far as its source has sent it (asking for it, the first time, or
        the first time since it was released); None for an unknown job or one whose source has
        sent none yet. Each call is a use: a history is released only after ``history_grace``
        seconds without one, and while nobody follows it."""
        channel = self._channels.get(job_id)
        if channel is None:
            return None
        self.histories.used(job_id, self._clock())
        if job_id not in self.history_interest.wanted:  # (a source may have given it up)
            self._loaded.setdefault(job_id, asyncio.Event())
            self.history_interest.want(job_id)
        return channel.history

    async def loaded_history(self, job_id: str, *, timeout: float) -> HistoryLog | None:
        """A job's history once its source has read all the file held, or after ``timeout``
        seconds as far as it got; None for an unknown job. Followed meanwhile."""
        self._history_readers[job_id] += 1
        try:
            self.history(job_id)
            loaded = self._loaded.get(job_id)
            if loaded is not None and not loaded.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(loaded.wait(), timeout)
            return self.history(job_id)
        finally:
            self._history_readers[job_id] -= 1
            if not self._history_readers[job_id]:
                del self._history_readers[job_id]

    def history_followed(self, job_id: str) -> bool:
        """Whether someone follows a job's history now: a client that asked for it, a REST
        request that reads it, or, on a cluster node, the publisher (every history of the
        node's own jobs goes to the bus)."""
        channel = self._channels.get(job_id)
        if channel is None:
            return False
        if job_id in self._history_readers or any(s.history for s in channel.subscribers):
            return True
        own = channel.published is None and channel.state.node == self.node
        return own and self._publishers > 0

    def release_idle_histories(self) -> int:
        """Release the histories nobody has followed for ``history_grace`` seconds; returns how
        many. Their sources stop following them; the next want reads them again."""
        released = self.histories.due(self._clock(), followed=self.history_followed)
        for job_id in released:
            self._release_history(job_id)
        return len(released)

    def _release_history(self, job_id: str) -> None:
        """Let a job's history go (the budget has forgotten it already)."""
        channel = self._channels.get(job_id)
        if channel is not None:
            channel.history = None
        self._loaded.pop(job_id, None)
        self.history_interest.unwant(job_id)

    def _extend_history(self, event: HistoryLines) -> None:
        channel = self._channels.get(event.job_id)
        if channel is None or event.job_id not in self.history_interest.wanted:
            return  # nobody wants it (any more: released, and its source told so)
        if event.loaded:
            self._loaded.setdefault(event.job_id, asyncio.Event()).set()
        if channel.history is None:
            channel.history = HistoryLog(max_entries=self.max_history)
            self.histories.hold(event.job_id, channel.history)
        if event.reset:
            channel.history.reset(list(event.entries))
        elif event.entries:
            channel.history.extend(list(event.entries))
        else:
            return
        self.histories.changed(event.job_id)
        for subscription in channel.subscribers:
            if subscription.history:
                subscription.wake()
        for watch in self._jobs_watches:
            if watch.history_changed is not None:
                watch.history_changed.add(event.job_id)
                watch.wake.set()
        for job_id in self.histories.over_budget(followed=self.history_followed):
            self._release_history(job_id)

    def subscribe(
        self,
        job_id: str,
        *,
        full: bool = False,
        history: bool = False,
        address: str | None = None,
        since: VersionId | None = None,
    ) -> Subscription:
        """Follow a job, from ``address`` (counted against ``max_clients_per_address``), from
        the version ``since`` if it is still known (the first message is then a patch from it).

        Raises:
            UnknownJob: there is no such job.
            TooManyClients: a client limit is reached.
        """
        channel = self._channels.get(job_id)
        if channel is None:
            raise UnknownJob(job_id)
        if self._clients >= self.max_clients:
            raise TooManyClients(protocol.TOO_MANY_CLIENTS.reason)
        if len(channel.subscribers) >= self.max_clients_per_job:
            raise TooManyClients(protocol.TOO_MANY_CLIENTS_FOR_JOB.reason)
        if address is not None and channel.addresses[address] >= self.max_clients_per_address:
            raise TooManyClients(protocol.TOO_MANY_CLIENTS_FROM_ADDRESS.reason)
        if history:
            self.history(job_id)  # asks for it: its first slice comes before the first message
        subscription = Subscription(channel, full=full, history=history, address=address)
        if since is not None:
            subscription.resume_base = self.resume_base(job_id, since)
        channel.add_subscriber(subscription)
        self._clients += 1
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        channel = subscription._channel
        if channel.remove_subscriber(subscription):
            self._clients -= 1
            if subscription.history and not channel.removed:
                self.histories.used(channel.job_id, self._clock())  # its grace starts now


def _release(counts: collections.Counter[str | None], address: str | None) -> None:
    """One client fewer from ``address``; an address with none left is forgotten."""
    if address is not None:
        counts[address] -= 1
        if not counts[address]:
            del counts[address]
