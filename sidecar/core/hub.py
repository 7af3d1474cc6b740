"""The job hub: each job's current state, versioned, and the clients that follow it.

Sources hand it events (``apply``: a job seen, a job gone, history lines, another node's job)
and it derives each job's state from them, stall included (``sweep`` re-applies the stall rule
as time passes). Connections ``subscribe`` and read ``Subscription.version`` whenever ``wait``
returns. Each version is diffed and serialised once, and the same bytes serve every client that
is up to date (``Subscription.deliver``). Backpressure policy: a subscription holds no queue,
only a wake-up flag, so a slow client skips intermediate states and gets one patch from what it
last saw to the latest. The hub routes events and clients to its parts (docs/architecture.md):
``versions``, ``client_limits``, ``cluster_view``, ``history_store``, ``kept_versions`` and
``job_index``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet

from sidecar.core.client_limits import (
    MAX_CLIENTS,
    MAX_CLIENTS_PER_ADDRESS,
    MAX_CLIENTS_PER_JOB,
    ClientLimits,
)
from sidecar.core.cluster_view import ClusterView
from sidecar.core.codec import JSONObject
from sidecar.core.events import (
    Event,
    HistoryLines,
    JobGone,
    JobPublished,
    JobSeen,
    NodeBack,
    NodeLost,
)
from sidecar.core.history_budget import HISTORY_BYTES, HISTORY_GRACE, HistoryBudget
from sidecar.core.history_log import DEFAULT_MAX_ENTRIES
from sidecar.core.history_store import HistoryStore
from sidecar.core.job_index import JobIndex
from sidecar.core.jobs_feed import ListFeed, ListViewer
from sidecar.core.kept_versions import (
    RESUME_BYTES,
    RESUME_BYTES_PER_JOB,
    RESUME_DEPTH,
    KeptVersions,
)
from sidecar.core.state import JobState, with_stall
from sidecar.core.subscription import JobsWatch, Subscription
from sidecar.core.version import Version, VersionId, new_epoch
from sidecar.core.versions import JobVersions

__all__ = ["STALL_AFTER", "JobHub", "ProcessCheck", "UnknownJob"]

STALL_AFTER = 60.0
"""The default (the server's settings take it from here)."""

ProcessCheck = Callable[[JobState], "bool | None"]
"""Whether the trainer process a job's document names still runs; None when unknowable."""


class UnknownJob(LookupError):
    """No job with that id."""


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
        # The current version is resumed from as it is: only the ones before it are kept.
        self.kept_versions = KeptVersions(
            depth=RESUME_DEPTH - 1, job_bytes=resume_bytes_per_job, total_bytes=resume_bytes
        )
        """The versions before the current ones, kept to resume clients from."""
        self._versions = JobVersions(epoch=self.epoch, kept=self.kept_versions)
        self._channels = self._versions.channels
        self.list_feed = ListFeed()
        """The jobs list, made once per tick for every dashboard."""
        self._jobs_watches: set[JobsWatch] = {self.list_feed.changes}
        self._index = JobIndex()
        self._cluster = ClusterView(node)
        self.limits = ClientLimits(
            max_clients=max_clients,
            max_clients_per_job=max_clients_per_job,
            max_clients_per_address=max_clients_per_address,
        )
        self.stall_after = stall_after
        self._clock = clock
        self.histories = HistoryStore(
            self._channels,
            node=node,
            max_entries=max_history,
            budget=HistoryBudget(total_bytes=history_bytes, grace=history_grace),
            clock=clock,
        )
        """The jobs' histories: asked of the sources, held on a budget, let go."""
        self.history_interest = self.histories.interest
        """Where sources learn whose history someone wants; they answer with ``HistoryLines``."""

    def __len__(self) -> int:
        return len(self._channels)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._channels

    @property
    def client_count(self) -> int:
        return self.limits.count

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
        """A job's summary in the jobs list, encoded once per state; None for an unknown job."""
        channel = self._channels.get(job_id)
        return channel.summary() if channel is not None else None

    @property
    def stall_candidates(self) -> frozenset[str]:
        """The jobs a sweep looks at: this node's own, with a file, not complete."""
        return frozenset(self._index.stall_candidates)

    @property
    def lost_nodes(self) -> AbstractSet[str]:
        return self._cluster.lost_nodes

    def stranded_nodes(self) -> set[str]:
        """The lost nodes that own a job not complete."""
        return self._cluster.stranded(self.states())

    # Sources: events in.

    def apply(self, event: Event) -> None:
        """Take one event from a source: the one way sources change the hub."""
        if isinstance(event, NodeLost | NodeBack):
            if self._cluster.node_seen(event.origin, lost=isinstance(event, NodeLost)):
                for each in list(self._channels.values()):
                    if each.published is not None and each.state.node == event.origin:
                        self._show_published(*each.published)
            return
        channel = self._channels.get(event.job_id)
        if not self._cluster.owns(event.origin, event.job_id, channel):
            return
        if isinstance(event, JobSeen):
            if channel is not None and channel.published is not None:
                channel.published = None  # this node's own job takes its id back
                self.histories.taken_back(channel)
            state = event.state(
                previous=self.get(event.job_id), now=self._clock(), stall_after=self.stall_after
            )
            self._put(state, arrived=event.arrived)
        elif isinstance(event, JobPublished):
            if (published := self._cluster.news(event, channel)) is not None:
                self._show_published(published, (event.epoch, event.seq))
        elif isinstance(event, JobGone):
            self._remove(event.job_id)
        else:
            self._extend_history(event)

    def _show_published(self, state: JobState, name: VersionId) -> None:
        shown, shown_name = self._cluster.shown(state, name)
        self._put(shown, name=shown_name, own=False)
        self._channels[state.job_id].published = (state, name)

    def sweep(self, *, process_alive: ProcessCheck | None = None) -> int:
        """Apply the stall rule to every job it can change now (``stall_candidates``: a sweep
        costs what they number, not what all jobs do), ``process_alive`` checking whether a
        job's trainer still runs (None: no check); returns how many changed."""
        now = self._clock()
        changed = []
        for job_id in self._index.stall_candidates:
            state = self._channels[job_id].state  # this node's own (another's owner sweeps it)
            alive = None
            if process_alive is not None and state.has_file and not state.complete:
                alive = process_alive(state)
            new = with_stall(state, now=now, stall_after=self.stall_after, process_alive=alive)
            if new is not state:
                changed.append(new)
        for state in changed:
            self._put(state)
        return len(changed)

    # Versions, and their fan-out.

    def _put(
        self,
        state: JobState,
        *,
        arrived: float | None = None,
        name: VersionId | None = None,
        own: bool = True,
    ) -> None:
        """Make ``state`` the job's state (``own``: this node's, or another's, published)."""
        new = state.job_id not in self._channels
        change = self._versions.put(state, arrived=arrived, name=name)
        if new:
            self._index.added(state.job_id)
        self._index.note(state.job_id, state, own=own)
        if change is None:
            return
        self._touch(state.job_id)  # the jobs list first: a client's send may fail
        version, previous = change
        if previous is not None:
            self._versions.deliver(state.job_id, version, previous)

    def resume_base(self, job_id: str, since: VersionId) -> JSONObject | None:
        """The body of the job's version ``since`` (``JobVersions.resume_base``)."""
        return self._versions.resume_base(job_id, since)

    @property
    def last_change(self) -> float:
        """When (monotonic clock) a job last got a new version."""
        return self._versions.last_change

    def _remove(self, job_id: str) -> None:
        """Forget a job; its subscriptions see ``version`` None."""
        self._cluster.forget(job_id)
        self.histories.forget(job_id)
        if self._versions.remove(job_id) is not None:
            self._index.removed(job_id)
            self._touch(job_id)

    def _touch(self, job_id: str) -> None:
        for watch in self._jobs_watches:
            watch.changed.add(job_id)
            watch.wake.set()

    def _extend_history(self, event: HistoryLines) -> None:
        if not self.histories.extend(event):
            return
        for subscription in self._channels[event.job_id].subscribers:
            if subscription.history:
                subscription.wake()
        for watch in self._jobs_watches:
            if watch.history_changed is not None:
                watch.history_changed.add(event.job_id)
                watch.wake.set()

    # Clients.

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
        self.limits.check_subscriber(len(channel.subscribers), channel.addresses, address)
        if history:
            self.histories.use(
                job_id
            )  # asks for it: its first slice comes before the first message
        subscription = Subscription(channel, full=full, history=history, address=address)
        if since is not None:
            subscription.resume_base = self.resume_base(job_id, since)
        channel.add_subscriber(subscription)
        self.limits.joined()  # counted once it is one: nothing before may leave it counted
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription.leave():
            self.limits.released()
            if subscription.history and subscription.version is not None:
                self.histories.unfollowed(subscription.job_id)  # its grace starts now

    def watch_all(self) -> JobsWatch:
        """Follow every job's changes and history, as a part of the sidecar does (the bus's
        publisher), not a client: no limit applies. Stop with ``unwatch_jobs``."""
        watch = JobsWatch(self._channels, history=True)
        self._jobs_watches.add(watch)
        self.histories.publishers += 1
        return watch

    def join_list(self, *, address: str | None = None) -> ListViewer:
        """A dashboard of the jobs list (``list_feed``), from ``address`` (the list counts as
        one more job against ``max_clients_per_address``); raises ``TooManyClients``."""
        self.limits.admit_watcher(address)
        viewer = ListViewer(address)
        self.list_feed.viewers.add(viewer)
        return viewer

    def leave_list(self, viewer: ListViewer) -> None:
        """The dashboard went (again: nothing)."""
        if viewer in self.list_feed.viewers:
            self.list_feed.viewers.remove(viewer)
            self.limits.released(watcher=True, watcher_address=viewer.address)

    def unwatch_jobs(self, watch: JobsWatch) -> None:
        if watch not in self._jobs_watches:
            return
        self._jobs_watches.remove(watch)
        self.histories.publisher_left()
