"""The jobs list's ticks and snapshots, made once for every dashboard (``core.jobs_feed``).

``run_jobs_feed`` is a background task: at most every ``MIN_INTERVAL`` it takes the jobs that
changed, makes each one's member of the next ``patch`` (its whole summary when it is new to the
list, the merge patch between its two summaries, or null when it went), and hands the message to
the feed. ``ListSnapshots`` makes the snapshot of the list as of its ``seq``, once for every
dashboard that asks before the list moves on. Both are long work for a list of 100,000 jobs:
they go a slice at a time (``slices``), and the bytes are the hub's own (``JobHub.listed``),
joined, not copied per dashboard.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Final

from aiohttp import web

from sidecar.core.codec import encode
from sidecar.core.contract import isoformat_utc
from sidecar.core.hub import JobHub
from sidecar.core.jobs_feed import ListFeed, ListMessage
from sidecar.core.patch import merge_patch
from sidecar.core.protocol import PATCH, SNAPSHOT, MessageType, jobs_list_message, text_frame
from sidecar.server.fragments import FRAGMENT_BYTES
from sidecar.server.slices import Slices

MIN_INTERVAL: Final = 0.1
"""Seconds between two ticks: a list of a thousand busy jobs would otherwise send one message
per file write."""
_NULL: Final = b"null"


async def run_jobs_feed(hub: JobHub, snapshots: ListSnapshots) -> None:
    """Tick the jobs list for ever (a supervised task)."""
    feed = hub.list_feed
    loop = asyncio.get_running_loop()
    while True:
        changed = await feed.changes.take()
        began = loop.time()
        feed.folding = True
        try:
            await _tick(hub, feed, changed)
        except BaseException:
            # Folded again by the task's next run (once restarted): a job whose summary did
            # not change is passed over, and none is left out of date.
            feed.changes.changed |= changed
            feed.changes.wake.set()
            raise
        finally:
            feed.tick_over()
            snapshots.let_go_of_older()
        # From the tick's start: its own work does not slow the list down.
        await asyncio.sleep(max(0.0, began + MIN_INTERVAL - loop.time()))


async def _tick(hub: JobHub, feed: ListFeed, changed: Iterable[str]) -> None:
    """Fold ``changed`` into the list: one message for every dashboard (none when nobody
    follows the list: the values alone are folded in)."""
    for_viewers = bool(feed.viewers)
    values: dict[str, bytes | None] = {}
    members = _Members()
    slices = Slices()
    await slices.start()
    try:
        for job_id in changed:
            now = hub.listed(job_id)
            before = feed.listed.get(job_id)
            if now is before:
                continue
            values[job_id] = now
            if for_viewers and (member := _member(before, now)) is not None:
                members.add(job_id, member)
            if slices.due():
                members.cut()
                await slices.pause()
    finally:
        slices.stop()
    if not values:
        return
    if not for_viewers:
        feed.advance(values, None)
    elif members.count:
        feed.advance(values, _list_message(PATCH, feed.seq + 1, members.chunks()))
    else:  # only new bytes of the same summaries: nothing to say
        feed.listed.update((k, v) for k, v in values.items() if v is not None)


def _member(before: bytes | None, now: bytes | None) -> bytes | None:
    """A job's value in the next patch: its whole summary (new), null (gone), the merge patch
    from ``before``, or None (nothing changed)."""
    if now is None:
        return _NULL
    if before is None:
        return now
    if before == now:
        return None
    # Both are the encoder's own bytes: plain json reads them back as they were.
    diff = merge_patch(json.loads(before), json.loads(now))
    return encode(diff) if diff else None


class _Members:
    """The members of a list message's ``jobs`` map (``"id":value``, comma-separated), joined
    into a chunk for each slice of the work that makes them."""

    def __init__(self) -> None:
        self.count = 0
        self._chunks: list[bytes] = []
        self._pieces: list[bytes] = []

    def add(self, job_id: str, value: bytes) -> None:
        # Every id in the hub passed the job id rule where it came in (files/layout, bus/wire):
        # it has nothing to escape, and is quoted as it is, 7 times faster than json's encoder.
        key = b'"%s":' % job_id.encode()
        self._pieces += (key if not self.count else b"," + key, value)
        self.count += 1

    def cut(self) -> None:
        """End a chunk: the slice is over."""
        self._chunks.append(b"".join(self._pieces))
        self._pieces = []

    def chunks(self) -> list[bytes]:
        self.cut()
        return self._chunks


def _list_message(kind: MessageType, seq: int, chunks: list[bytes]) -> ListMessage:
    """A list message: its envelope, encoded with an empty ``jobs``, opened up to take the
    members, joined a slice's worth to a chunk (``jobs`` is its last member: the envelope ends
    with ``{}}``); one frame too when it is short."""
    envelope = encode(
        jobs_list_message(kind, seq=seq, timestamp=isoformat_utc(time.time()), jobs={})
    )
    assert envelope.endswith(b"{}}"), envelope
    pieces = (envelope[:-2], *chunks, b"}}")
    size = sum(map(len, pieces))
    frame = text_frame(b"".join(pieces)) if size <= FRAGMENT_BYTES else None
    return ListMessage(seq, pieces, frame)


class ListSnapshots:
    """The list's snapshot as of its ``seq``, made once for every dashboard that asks for it
    before the list moves on."""

    def __init__(self, hub: JobHub) -> None:
        self._hub = hub
        self._made: tuple[int, asyncio.Task[ListMessage]] | None = None

    async def get(self) -> ListMessage:
        feed = self._hub.list_feed
        if self._made is None or self._made[0] != feed.seq:
            # The list as of now, copied: it moves on while the snapshot is made.
            making = self._make(feed.seq, dict(feed.listed))
            self._made = (feed.seq, asyncio.ensure_future(making))
        # shielded: a dashboard that leaves while it is made must not cancel it for the others
        return await asyncio.shield(self._made[1])

    def let_go_of_older(self) -> None:
        """Forget a snapshot of a ``seq`` the list has left (16 MB for 100,000 jobs)."""
        if self._made is not None and self._made[0] != self._hub.list_feed.seq:
            self._made = None

    async def _make(self, seq: int, listed: dict[str, bytes]) -> ListMessage:
        """Every job's summary in ``listed``, the list as of ``seq``, in the hub's order."""
        members = _Members()
        slices = Slices()
        await slices.start()
        try:
            for job_id in self._hub.job_ids():
                if (summary := listed.pop(job_id, None)) is not None:
                    members.add(job_id, summary)
                if slices.due():
                    members.cut()
                    await slices.pause()
        finally:
            slices.stop()
        # Jobs gone from the hub since the list's last tick: still in the list.
        for job_id, summary in listed.items():
            members.add(job_id, summary)
        return _list_message(SNAPSHOT, seq, members.chunks())


LIST_SNAPSHOTS = web.AppKey("list_snapshots", ListSnapshots)
