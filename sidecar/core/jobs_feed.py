"""The jobs list, made once per tick for every dashboard: one state, one patch, the same bytes.

The feed holds each job's summary as of its ``seq`` (``listed``). Each tick (the server's
``jobs_feed``) folds in the jobs that changed since the last one and makes one ``patch``
message of them, numbered ``seq + 1``, kept a while (``MAX_KEPT`` messages, ``MAX_KEPT_BYTES``)
for the dashboards that were busy when it came. A dashboard that holds the list as of the
message before, and is idle, is handed the message's frame at once (``ListViewer.direct``); any
other is woken, and its sender catches it up from the kept messages, or with a snapshot of
``listed`` when it is further behind than they go. A tick thus costs one merge patch per changed
job whatever the number of dashboards, and each dashboard one write of the same bytes.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from sidecar.core.subscription import JobsWatch

MAX_KEPT: Final = 50
"""Messages kept for dashboards that were busy (5 s of ticks at most ten a second)."""
MAX_KEPT_BYTES: Final = 4 << 20
"""What the kept messages may weigh together (the latest is always kept)."""


@dataclass(frozen=True, slots=True)
class ListMessage:
    """One message of the jobs list, the same bytes for every dashboard.

    Args:
        seq: the list's number after this message.
        pieces: the message's text, in pieces (``send_pieces`` fragments a long one).
        frame: the whole message as one text frame, when it is short enough for one; None
            otherwise (it then goes out in fragments, by each dashboard's sender).
    """

    seq: int
    pieces: tuple[bytes, ...]
    frame: bytes | None

    @property
    def size(self) -> int:
        return sum(map(len, self.pieces))


class ListViewer:
    """One dashboard of the jobs list."""

    __slots__ = ("_wake", "address", "busy", "direct", "seq")

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        """Where the dashboard connects from (None: not known); counted as one more job."""
        self.seq: int | None = None
        """The list's number as of the last message sent to it (None: nothing yet)."""
        self.busy = False
        """Its own sender is in the middle of a send."""
        self.direct: Callable[[bytes], bool] | None = None
        """Writes a whole frame at once, without waiting, if the connection can take it now."""
        self._wake = asyncio.Event()
        self._wake.set()

    async def wait(self) -> None:
        """Return once there may be something to send (or the dashboard went)."""
        await self._wake.wait()
        self._wake.clear()

    def wake(self) -> None:
        self._wake.set()


class ListFeed:
    """The jobs list's state, its latest messages, and the dashboards that follow it.

    Args:
        max_kept: messages kept for dashboards that were busy.
        max_kept_bytes: what they may weigh together.
    """

    def __init__(self, *, max_kept: int = MAX_KEPT, max_kept_bytes: int = MAX_KEPT_BYTES) -> None:
        self.max_kept = max_kept
        self.max_kept_bytes = max_kept_bytes
        self.seq = 0
        """The list's number: one more for each message."""
        self.listed: dict[str, bytes] = {}
        """Each job's summary as of ``seq``, encoded (the hub's own bytes)."""
        self.changes = JobsWatch(())
        """The jobs that changed since the last tick (the hub adds to it)."""
        self.folding = False
        """A tick is under way: what it folds in is not yet in ``listed``."""
        self.ticks = 0
        """Ticks over so far (each ends with ``tick_over``, whether it made a message or not)."""
        self.viewers: set[ListViewer] = set()
        self._kept: collections.deque[ListMessage] = collections.deque()
        self._kept_bytes = 0

    @property
    def up_to_date(self) -> bool:
        """Whether ``listed`` holds every change the hub has made known."""
        return not self.folding and not self.changes.changed

    def tick_over(self) -> None:
        """A tick is over (``folding`` was set while it ran): the dashboards that wait for
        the list to be up to date before their snapshot may go on, even when it made no
        message."""
        self.folding = False
        self.ticks += 1
        for viewer in self.viewers:
            if viewer.seq is None:
                viewer.wake()

    def advance(self, values: Mapping[str, bytes | None], message: ListMessage | None) -> None:
        """End a tick: each of ``values`` becomes the job's summary (None: the job went), and
        ``message`` (None: made for nobody, as no dashboard followed) takes the list to the next
        ``seq``. Dashboards up to date take it at once; the others are woken."""
        for job_id, summary in values.items():
            if summary is None:
                self.listed.pop(job_id, None)
            else:
                self.listed[job_id] = summary
        self.seq += 1
        if message is None:
            self._kept.clear()  # nobody can be brought from before to here but by a snapshot
            self._kept_bytes = 0
        else:
            assert message.seq == self.seq, (message.seq, self.seq)
            self._keep(message)
        for viewer in self.viewers:
            if (
                message is not None
                and message.frame is not None
                and viewer.seq == message.seq - 1
                and not viewer.busy
                and viewer.direct is not None
                and viewer.direct(message.frame)
            ):
                viewer.seq = message.seq
            else:
                viewer.wake()

    def since(self, seq: int) -> list[ListMessage] | None:
        """The kept messages after ``seq``, in order; None when they do not reach back to it (a
        snapshot is needed)."""
        if seq == self.seq:
            return []
        if not self._kept or self._kept[0].seq > seq + 1 or seq > self.seq:
            return None
        return [message for message in self._kept if message.seq > seq]

    def _keep(self, message: ListMessage) -> None:
        self._kept.append(message)
        self._kept_bytes += message.size
        while len(self._kept) > 1 and (
            len(self._kept) > self.max_kept or self._kept_bytes > self.max_kept_bytes
        ):
            self._kept_bytes -= self._kept.popleft().size
