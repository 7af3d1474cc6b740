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
import itertools
import time
from collections.abc import Callable, Iterator

from sidecar.core import protocol
from sidecar.core.codec import drop_nulls
from sidecar.core.events import Event, HistoryInterest, HistoryLines, JobGone, JobSeen
from sidecar.core.history_log import DEFAULT_MAX_ENTRIES, HistoryLog
from sidecar.core.patch import json_equal
from sidecar.core.state import PROCESS_EXITED, JobState, with_stall
from sidecar.core.subscription import Channel, JobsWatch, Subscription
from sidecar.core.version import DirectSend, Version

__all__ = [
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
        stall_after: seconds without a change after which a running job is stalled.
        clock: POSIX time, for the stall rule.
    """

    def __init__(
        self,
        *,
        max_clients: int = MAX_CLIENTS,
        max_clients_per_job: int = MAX_CLIENTS_PER_JOB,
        max_clients_per_address: int = MAX_CLIENTS_PER_ADDRESS,
        max_history: int = DEFAULT_MAX_ENTRIES,
        stall_after: float = STALL_AFTER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._channels: dict[str, Channel] = {}
        self._seq = itertools.count(1)
        self._clients = 0
        self._jobs_watches: set[JobsWatch] = set()
        self._watch_addresses: collections.Counter[str | None] = collections.Counter()
        self._loaded: dict[str, asyncio.Event] = {}
        self.max_clients = max_clients
        self.max_clients_per_job = max_clients_per_job
        self.max_clients_per_address = max_clients_per_address
        self.max_history = max_history
        self.stall_after = stall_after
        self._clock = clock
        self.history_interest = HistoryInterest()
        """Where sources learn whose history someone wants (histories nobody asks for cost
        nothing); they answer with ``HistoryLines`` events."""

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

    def apply(self, event: Event) -> None:
        """Take one event from a source: the one way sources change the hub."""
        if isinstance(event, JobSeen):
            self.put(self._state_of(event), arrived=event.arrived)
        elif isinstance(event, JobGone):
            self.remove(event.job_id)
        else:
            self._extend_history(event)

    def _state_of(self, event: JobSeen) -> JobState:
        state = JobState(
            event.job_id,
            drop_nulls(event.document),
            event.modified_at,
            has_file=event.has_file,
            read_error=event.read_error,
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
        """Apply the stall rule to every job now; returns how many changed.

        Args:
            process_alive: checks whether a job's trainer process still runs (for the jobs
                with a file that are not complete); None checks none.
        """
        now = self._clock()
        changed = []
        for state in self.states():
            alive = None
            if process_alive is not None and state.has_file and not state.complete:
                alive = process_alive(state)
            new = with_stall(state, now=now, stall_after=self.stall_after, process_alive=alive)
            if new is not state:
                changed.append(new)
        for state in changed:
            self.put(state)
        return len(changed)

    def put(self, state: JobState, *, arrived: float | None = None) -> None:
        """Make ``state`` the job's current state; clients are told if what they see changed.

        Args:
            state: the job's new state.
            arrived: when the change reached the sidecar (monotonic clock); now by default.
        """
        channel = self._channels.get(state.job_id)
        body = state.body()
        if channel is None:
            self._channels[state.job_id] = Channel(
                state.job_id, state, Version(next(self._seq), body, None)
            )
            self._touch(state.job_id)
            return
        channel.state = state
        if json_equal(channel.version.body, body):
            return
        self._touch(state.job_id)
        previous = channel.version
        version = channel.version = Version(next(self._seq), body, previous)
        if arrived is not None:
            version.created = arrived
        for subscription in channel.subscribers:
            # The broadcast fast path: a client that is up to date and idle gets the shared
            # patch written at once; any other is woken, and its sender catches it up.
            if (
                subscription.direct is not None
                and not subscription.busy
                and subscription.sent is previous
                and subscription.direct(version, previous)
            ):
                subscription.sent = version
                if not version.complete:
                    continue  # its sender still has to close the connection after this one
            subscription.wake()

    def remove(self, job_id: str) -> None:
        """Forget a job; its subscriptions see ``version`` None."""
        channel = self._channels.pop(job_id, None)
        self.history_interest.forget(job_id)
        self._loaded.pop(job_id, None)
        if channel is None:
            return
        channel.removed = True
        for subscription in channel.subscribers:
            subscription.wake()
        self._touch(job_id)

    def watch_jobs(self, *, address: str | None = None) -> JobsWatch:
        """Follow every job's comings, goings and changes (the dashboard's list), from
        ``address`` (the list counts as one more job against ``max_clients_per_address``).

        Raises:
            TooManyClients: a client limit is reached.
        """
        if self._clients >= self.max_clients:
            raise TooManyClients(protocol.TOO_MANY_CLIENTS.reason)
        if address is not None and self._watch_addresses[address] >= self.max_clients_per_address:
            raise TooManyClients(protocol.TOO_MANY_JOBS_LIST_CLIENTS_FROM_ADDRESS.reason)
        watch = JobsWatch(self._channels, address)
        self._jobs_watches.add(watch)
        self._clients += 1
        if address is not None:
            self._watch_addresses[address] += 1
        return watch

    def unwatch_jobs(self, watch: JobsWatch) -> None:
        if watch in self._jobs_watches:
            self._jobs_watches.remove(watch)
            self._clients -= 1
            _release(self._watch_addresses, watch.address)

    def _touch(self, job_id: str) -> None:
        for watch in self._jobs_watches:
            watch.changed.add(job_id)
            watch.wake.set()

    def history(self, job_id: str) -> HistoryLog | None:
        """A job's history as far as its source has sent it (asking for it, the first time);
        None for an unknown job or one whose source has sent none yet."""
        channel = self._channels.get(job_id)
        if channel is None:
            return None
        if channel.history is None:
            self._loaded.setdefault(job_id, asyncio.Event())
            self.history_interest.want(job_id)
        return channel.history

    async def loaded_history(self, job_id: str, *, timeout: float) -> HistoryLog | None:
        """A job's history once its source has read all the file held, or after ``timeout``
        seconds as far as it got; None for an unknown job."""
        self.history(job_id)
        loaded = self._loaded.get(job_id)
        if loaded is not None and not loaded.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(loaded.wait(), timeout)
        return self.history(job_id)

    def _extend_history(self, event: HistoryLines) -> None:
        channel = self._channels.get(event.job_id)
        if channel is None:
            return
        if event.loaded:
            self._loaded.setdefault(event.job_id, asyncio.Event()).set()
        if channel.history is None:
            channel.history = HistoryLog(max_entries=self.max_history)
        if event.reset:
            channel.history.reset(list(event.entries))
        elif event.entries:
            channel.history.extend(list(event.entries))
        else:
            return
        for subscription in channel.subscribers:
            if subscription.history:
                subscription.wake()

    def subscribe(
        self,
        job_id: str,
        *,
        full: bool = False,
        history: bool = False,
        address: str | None = None,
    ) -> Subscription:
        """Follow a job, from ``address`` (counted against ``max_clients_per_address``).

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
        channel.subscribers.add(subscription)
        if address is not None:
            channel.addresses[address] += 1
        self._clients += 1
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        channel = subscription._channel
        if subscription in channel.subscribers:
            channel.subscribers.remove(subscription)
            self._clients -= 1
            _release(channel.addresses, subscription.address)


def _release(counts: collections.Counter[str | None], address: str | None) -> None:
    """One client fewer from ``address``; an address with none left is forgotten."""
    if address is not None:
        counts[address] -= 1
        if not counts[address]:
            del counts[address]
