"""A client's view of a job, and of the jobs list: what the hub hands a connection."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from sidecar.core.codec import JSONObject
from sidecar.core.history_log import HistoryLog
from sidecar.core.listing import encoded_summary
from sidecar.core.state import JobState
from sidecar.core.version import DirectSend, Version, VersionId

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


class Subscription:
    """One client's view of one job."""

    __slots__ = (
        "_channel",
        "_wake",
        "address",
        "busy",
        "close_turn",
        "direct",
        "full",
        "history",
        "resume_base",
        "sent",
    )

    def __init__(
        self, channel: Channel, *, full: bool, history: bool, address: str | None = None
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
        self.close_turn: Callable[[Callable[[], None]], None] | None = None
        """Once the job's final version went out on the fast path, only the close is left: this
        is handed the wake-up that leads the sender to it, to call when the close's turn comes
        (the server paces closes); None: wake the sender at once."""
        self.resume_base: JSONObject | None = None
        """The state the client resumes from (it asked ``since`` a version still known); its
        first message is then a patch from this state, not a snapshot."""

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

    @property
    def woken(self) -> bool:
        """Whether ``wait`` would return at once."""
        return self._wake.is_set()

    def deliver(self, version: Version, previous: Version) -> None:
        """Tell the client of the job's new ``version``, which follows ``previous``. The
        broadcast fast path: a client that is up to date and idle gets the shared patch handed to
        its connection at once (``direct``); any other is woken, and its sender catches it up."""
        if (
            self.direct is not None
            and not self.busy
            and self.sent is previous
            and not previous.complete  # its close waits its turn: nothing more goes out
            and self.direct(version, previous)
        ):
            self.sent = version
            if not version.complete:
                return
            if self.close_turn is not None:
                # Only the close is left, and it may wait: the final message is out.
                self.close_turn(self.wake)
                return
        self.wake()

    def leave(self) -> bool:
        """Stop following the job; False if this was done already."""
        return self._channel.remove_subscriber(self)


class JobsWatch:
    """Which jobs changed since the last look: the jobs list's feed, and the bus's publisher."""

    __slots__ = ("changed", "history_changed", "wake")

    def __init__(self, job_ids: Iterable[str], *, history: bool = False) -> None:
        self.changed: set[str] = set(job_ids)
        self.history_changed: set[str] | None = set() if history else None
        """The jobs whose history grew (a watch that asks for them only)."""
        self.wake = asyncio.Event()
        self.wake.set()

    async def take(self) -> set[str]:
        """Wait for changes, then return the ids of the jobs that changed (or went)."""
        await self.wake.wait()
        self.wake.clear()
        changed, self.changed = self.changed, set()
        return changed


class Channel:
    __slots__ = (
        "addresses",
        "history",
        "job_id",
        "listed",
        "listed_of",
        "published",
        "removed",
        "state",
        "subscribers",
        "version",
    )

    def __init__(self, job_id: str, state: JobState, version: Version) -> None:
        self.job_id = job_id
        self.state = state
        self.version = version
        self.subscribers: AbstractSet[Subscription] = _NONE
        """The job's clients (``add_subscriber``, ``remove_subscriber``)."""
        self.addresses: Mapping[str | None, int] = _NO_ADDRESSES
        """How many of them connect from each address."""
        self.removed = False
        self.history: HistoryLog | None = None
        """The job's history while it is held (the hub's ``histories`` keep it on a budget)."""
        self.published: tuple[JobState, VersionId] | None = None
        """Another node's job: its state and version name as its owner published them (what is
        shown may differ: stalled while the node is lost)."""
        self.listed: bytes | None = None
        """The job's summary in the jobs list, encoded (the hub makes it again once ``state``
        is another than ``listed_of``, the state it was made from)."""
        self.listed_of: JobState | None = None

    def summary(self) -> bytes:
        """The job's summary in the jobs list, encoded (``encoded_summary``) once per state."""
        if self.listed is None or self.listed_of is not self.state:
            self.listed = encoded_summary(self.state)
            self.listed_of = self.state
        return self.listed

    def add_subscriber(self, subscription: Subscription) -> None:
        """One more client of the job. Its set of clients and its counts by address are made
        at the first (100,000 jobs that nobody follows held 200,000 empty ones) and let go after
        the last."""
        subscribers = self.subscribers if isinstance(self.subscribers, set) else set()
        addresses = self.addresses
        if addresses is _NO_ADDRESSES or not isinstance(addresses, collections.Counter):
            addresses = collections.Counter()
        subscribers.add(subscription)
        if subscription.address is not None:
            addresses[subscription.address] += 1
        self.subscribers, self.addresses = subscribers, addresses

    def remove_subscriber(self, subscription: Subscription) -> bool:
        """One client fewer; False if it was not one."""
        subscribers, addresses = self.subscribers, self.addresses
        if not isinstance(subscribers, set) or subscription not in subscribers:
            return False
        subscribers.remove(subscription)
        address = subscription.address
        if address is not None and isinstance(addresses, collections.Counter):
            assert addresses is not _NO_ADDRESSES
            addresses[address] -= 1
            if not addresses[address]:
                del addresses[address]
        if not subscribers:
            self.subscribers, self.addresses = _NONE, _NO_ADDRESSES
        return True


_NONE: frozenset[Subscription] = frozenset()
_NO_ADDRESSES: Mapping[str | None, int] = collections.Counter()
"""Shared by every job without a client: read only."""
