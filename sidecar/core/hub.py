"""The job hub: current state per job, versioned, and the subscriptions that follow it.

Sources (the file watcher today, perhaps a message bus tomorrow) call ``put`` and ``remove``;
connections ``subscribe`` and read ``Subscription.version`` whenever ``wait`` returns. Each
version is diffed and serialised once, and the same bytes serve every client that is up to
date: written at once to those whose connection is idle (``Subscription.direct``, as the
websockets library's ``broadcast`` does), through their own sender otherwise. Backpressure
policy: a subscription holds no queue, only a wake-up flag, so a slow client skips
intermediate states and gets one patch from what it last saw to the latest.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from collections.abc import Callable, Iterator

from sidecar.core.codec import JSONObject, encode, encode_with_list
from sidecar.core.history_log import DEFAULT_MAX_ENTRIES, HistoryLog
from sidecar.core.patch import json_equal, merge_patch
from sidecar.core.state import JobState

DirectSend = Callable[["Version", "Version"], bool]
"""``direct(new, previous)`` writes the patch from ``previous`` to ``new`` now; False if it cannot."""


class UnknownJob(LookupError):
    """No job with that id."""


class TooManyClients(RuntimeError):
    """A client limit is reached; the message says which."""


class Version:
    """One state of a job as sent to clients, numbered by ``seq``."""

    __slots__ = (
        "_patch",
        "_previous_body",
        "_previous_seq",
        "_snapshot",
        "body",
        "complete",
        "created",
        "index",
        "seq",
    )

    def __init__(self, seq: int, body: JSONObject, previous: Version | None) -> None:
        self.seq = seq
        self.body = body
        # The how-manieth state of its job: a jump in ``index`` counts the states skipped.
        self.index: int = previous.index + 1 if previous is not None else 0
        self.created = time.monotonic()
        self.complete = body.get("complete") is True
        self._previous_body = previous.body if previous is not None else None
        self._previous_seq = previous.seq if previous is not None else None
        self._snapshot: bytes | None = None
        self._patch: bytes | None = None

    def snapshot_frame(self) -> bytes:
        """The whole state as a ``snapshot`` message."""
        if self._snapshot is None:
            self._snapshot = encode(self._envelope("snapshot", self.body))
        return self._snapshot

    def patch_frame(self, since: Version) -> bytes:
        """A ``patch`` message that turns the state of ``since`` into this one."""
        if since.seq == self._previous_seq:
            if self._patch is None:
                assert self._previous_body is not None
                self._patch = encode(
                    self._envelope("patch", merge_patch(self._previous_body, self.body))
                )
                self._previous_body = None  # the cached frame is all that is needed from now on
            return self._patch
        # A client that skipped states: its own patch, built once for it.
        return encode(self._envelope("patch", merge_patch(since.body, self.body)))

    def log_frame(self, entries: list[bytes], *, reset: bool = False) -> bytes:
        """A ``log`` message carrying history entries (already encoded), at this version."""
        return encode_with_list(
            self._envelope("log", {"reset": True} if reset else {}), "entries", entries
        )

    def _envelope(self, kind: str, fields: JSONObject) -> JSONObject:
        message: JSONObject = {
            "type": kind,
            "job_id": self.body["job_id"],
            "seq": self.seq,
            "timestamp": self.body["timestamp"],
        }
        message.update(fields)
        return message


class Subscription:
    """One client's view of one job."""

    __slots__ = ("_channel", "_wake", "address", "busy", "direct", "full", "history", "sent")

    def __init__(
        self, channel: _Channel, *, full: bool, history: bool, address: str | None = None
    ) -> None:
        self._channel = channel
        self.address = address
        """Where the client connects from (None: not known); counted per job."""
        self._wake = asyncio.Event()
        self._wake.set()
        self.full = full
        self.history = history
        self.sent: Version | None = None
        """The last version this client was sent."""
        self.busy = False
        """The client's own sender is in the middle of a send."""
        self.direct: DirectSend | None = None
        """Sends a patch at once, without waiting, if the connection can take it now."""

    @property
    def job_id(self) -> str:
        return self._channel.job_id

    @property
    def version(self) -> Version | None:
        """The job's latest version; None once the job is removed."""
        return None if self._channel.removed else self._channel.version

    @property
    def history_log(self) -> HistoryLog | None:
        """The job's history, once a source has loaded it."""
        return self._channel.history

    async def wait(self) -> None:
        """Return once there may be a newer version (or the job is gone) than at the last call."""
        await self._wake.wait()
        self._wake.clear()

    def wake(self) -> None:
        """Make ``wait`` return, as a new version does."""
        self._wake.set()


class JobsWatch:
    """One client of the jobs list: which jobs changed since it last looked."""

    __slots__ = ("address", "changed", "hub", "wake")

    def __init__(self, hub: JobHub, address: str | None = None) -> None:
        self.hub = hub
        self.address = address
        self.changed: set[str] = set(hub._channels)
        self.wake = asyncio.Event()
        self.wake.set()

    async def take(self) -> set[str]:
        """Wait for changes, then return the ids of the jobs that changed (or went)."""
        await self.wake.wait()
        self.wake.clear()
        changed, self.changed = self.changed, set()
        return changed


class _Channel:
    __slots__ = ("addresses", "history", "job_id", "removed", "state", "subscribers", "version")

    def __init__(self, job_id: str, state: JobState, version: Version) -> None:
        self.job_id = job_id
        self.state = state
        self.version = version
        self.subscribers: set[Subscription] = set()
        self.addresses: collections.Counter[str | None] = collections.Counter()
        self.removed = False
        self.history: HistoryLog | None = None


class JobHub:
    """Every job's state, and the clients that follow each.

    Args:
        max_clients: subscriptions allowed in all.
        max_clients_per_job: subscriptions allowed on one job.
        max_clients_per_address: subscriptions allowed on one job from one address, so that
            one client cannot take a job's whole quota.
        max_history: history entries kept per job (the oldest go first).
    """

    def __init__(
        self,
        *,
        max_clients: int = 1000,
        max_clients_per_job: int = 10,
        max_clients_per_address: int = 5,
        max_history: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._channels: dict[str, _Channel] = {}
        self._seq = itertools.count(1)
        self._clients = 0
        self._jobs_watches: set[JobsWatch] = set()
        self._watch_addresses: collections.Counter[str] = collections.Counter()
        self.max_clients = max_clients
        self.max_clients_per_job = max_clients_per_job
        self.max_clients_per_address = max_clients_per_address
        self.max_history = max_history
        self.history_source: Callable[[str], asyncio.Future[None] | None] | None = None
        """Called with a job id the first time someone asks for that job's history, so that a
        source can load it lazily (with ``extend_history``); histories nobody asks for cost
        nothing. A source that loads a long history a slice at a time returns a future that is
        done once it is loaded."""
        self._history_loads: dict[str, asyncio.Future[None]] = {}

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

    def put(self, state: JobState, *, arrived: float | None = None) -> None:
        """Make ``state`` the job's current state; clients are told if what they see changed.

        Args:
            state: the job's new state.
            arrived: when the change reached the sidecar (monotonic clock); now by default.
        """
        channel = self._channels.get(state.job_id)
        body = state.body()
        if channel is None:
            self._channels[state.job_id] = _Channel(
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
            raise TooManyClients("too many clients")
        if address is not None and self._watch_addresses[address] >= self.max_clients_per_address:
            raise TooManyClients("too many clients of the jobs list from this address")
        watch = JobsWatch(self, address)
        self._jobs_watches.add(watch)
        self._clients += 1
        if address is not None:
            self._watch_addresses[address] += 1
        return watch

    def unwatch_jobs(self, watch: JobsWatch) -> None:
        if watch in self._jobs_watches:
            self._jobs_watches.remove(watch)
            self._clients -= 1
            if watch.address is not None:
                self._watch_addresses[watch.address] -= 1
                if not self._watch_addresses[watch.address]:
                    del self._watch_addresses[watch.address]

    def _touch(self, job_id: str) -> None:
        for watch in self._jobs_watches:
            watch.changed.add(job_id)
            watch.wake.set()

    def history(self, job_id: str) -> HistoryLog | None:
        """A job's history, loaded from its source at the first call; None for an unknown job."""
        channel = self._channels.get(job_id)
        if channel is None:
            return None
        if channel.history is None and self.history_source is not None:
            loading = self.history_source(job_id)
            if loading is not None and not loading.done():
                self._history_loads[job_id] = loading
                loading.add_done_callback(lambda done: self._loaded(job_id, done))
        return channel.history

    def _loaded(self, job_id: str, loading: asyncio.Future[None]) -> None:
        if self._history_loads.get(job_id) is loading:
            del self._history_loads[job_id]

    async def loaded_history(self, job_id: str, *, timeout: float) -> HistoryLog | None:
        """A job's history once its source has loaded it, or after ``timeout`` seconds as far as
        it is loaded then; None for an unknown job."""
        log = self.history(job_id)
        loading = self._history_loads.get(job_id)
        if loading is None:
            return log
        await asyncio.wait([loading], timeout=timeout)
        return self.history(job_id)

    def extend_history(self, job_id: str, entries: list[bytes], *, reset: bool = False) -> None:
        """Append entries to a job's history (or replace it, with ``reset``); readers are told."""
        channel = self._channels.get(job_id)
        if channel is None:
            return
        if channel.history is None:
            channel.history = HistoryLog(max_entries=self.max_history)
        if reset:
            channel.history.reset(entries)
        elif entries:
            channel.history.extend(entries)
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
            raise TooManyClients("too many clients")
        if len(channel.subscribers) >= self.max_clients_per_job:
            raise TooManyClients("too many clients for this job")
        if address is not None and channel.addresses[address] >= self.max_clients_per_address:
            raise TooManyClients("too many clients for this job from this address")
        if history:
            self.history(job_id)  # loads it, so that the first log message holds it all
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
            if subscription.address is not None:
                channel.addresses[subscription.address] -= 1
                if not channel.addresses[subscription.address]:
                    del channel.addresses[subscription.address]
