"""``GET /ws/jobs``: every job's summary, then merge patches by job, for the dashboard's list.

Each message is made from the summaries the hub encoded once per state (``JobHub.listed``), a
slice at a time (``slices``), and a long one goes out in fragments
(``fragments``): a snapshot of 100,000 jobs never holds the other clients up for more than a few
ms. What a client was sent is kept as those same bytes (shared, not copied), and a job's patch
is the merge patch between its two summaries, decoded only then. The snapshot is made from the
hub's sorted ids (``JobHub.job_ids``), the patches from what the watch says changed.
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
from sidecar.core.patch import merge_patch
from sidecar.core.protocol import PATCH, SNAPSHOT, MessageType, jobs_list_message
from sidecar.core.subscription import JobsWatch
from sidecar.server.access import client_address
from sidecar.server.fragments import send_pieces
from sidecar.server.keys import HUB, METRICS
from sidecar.server.slices import Slices
from sidecar.server.sockets import ClientSocket, admit, open_socket, serving

# At most this many list messages a second per client: a list of a thousand busy jobs would
# otherwise send one message per file write.
MIN_INTERVAL: Final = 0.1
_NULL: Final = b"null"


async def jobs_socket(request: web.Request) -> web.WebSocketResponse:
    """Stream the jobs list: a ``snapshot`` of every summary, then ``patch`` messages."""
    hub = request.app[HUB]
    ws = await open_socket(request)
    address = client_address(request)
    watch = await admit(ws, lambda: hub.watch_jobs(address=address))
    if watch is None:
        return ws
    async with serving(
        request, ws, peer="jobs list", on_end=watch.wake.set, leave=lambda: hub.unwatch_jobs(watch)
    ) as client:
        await _send_changes(client, hub, watch)
    return ws


async def _send_changes(client: ClientSocket, hub: JobHub, watch: JobsWatch) -> None:
    """Send every summary, then those that changed, at most every ``MIN_INTERVAL``, until the
    end. (The watch holds what changed since it began: the snapshot is made from every job.)"""
    metrics = client.request.app[METRICS]
    sent: dict[str, bytes] = {}
    jobs: Iterable[str] = hub.job_ids()
    seq = 0
    while True:
        members = await _changed_members(client, hub, jobs, sent)
        if members is None:
            return
        if members or seq == 0:
            seq += 1
            kind: MessageType = SNAPSHOT if seq == 1 else PATCH
            if not await send_pieces(client, _message(kind, seq, members)):
                return
            metrics.send.messages[f"jobs_{kind}"] += 1
        await asyncio.sleep(MIN_INTERVAL)
        jobs = await watch.take()
        if client.gone:
            return


async def _changed_members(
    client: ClientSocket, hub: JobHub, jobs: Iterable[str], sent: dict[str, bytes]
) -> list[bytes] | None:
    """The members of the ``jobs`` map of the next message for these jobs, joined a slice at a
    time (``Slices``): each job's id, then its whole summary (new to this client), the merge
    patch from what the client holds, or null (gone), comma-separated. ``sent`` follows. None
    when the client went meanwhile."""
    chunks: list[bytes] = []
    pieces: list[bytes] = []
    first = True
    slices = Slices()
    await slices.start()
    try:
        for job_id in jobs:
            value = _change(hub, job_id, sent)
            if value is not None:
                pieces += (_key(job_id, first=first), value)
                first = False
            if slices.due():
                chunks.append(b"".join(pieces))
                pieces = []
                await slices.pause()
                if client.gone:
                    return None
    finally:
        slices.stop()
    chunks.append(b"".join(pieces))
    return chunks if not first else []


def _key(job_id: str, *, first: bool) -> bytes:
    """``"job_id":`` (after a comma unless ``first``)."""
    # Every id in the hub passed the job id rule where it came in (files/layout, bus/wire): it
    # has nothing to escape, and is quoted as it is, 7 times faster than json's encoder.
    key = b'"%s":' % job_id.encode()
    return key if first else b"," + key


def _change(hub: JobHub, job_id: str, sent: dict[str, bytes]) -> bytes | None:
    """A job's value in the next message (None: nothing to say); ``sent`` then holds what the
    client has."""
    now = hub.listed(job_id)
    before = sent.get(job_id)
    if now is None:
        if before is None:
            return None
        del sent[job_id]
        return _NULL
    sent[job_id] = now
    if before is None:
        return now
    if before is now or before == now:
        return None
    # Both are the encoder's own bytes: plain json reads them back as they were.
    diff = merge_patch(json.loads(before), json.loads(now))
    return encode(diff) if diff else None


def _message(kind: MessageType, seq: int, members: list[bytes]) -> list[bytes]:
    """A list message as pieces: its envelope, encoded with an empty ``jobs``, opened up to
    take the members (``jobs`` is its last member: it ends with ``{}}``)."""
    envelope = encode(
        jobs_list_message(kind, seq=seq, timestamp=isoformat_utc(time.time()), jobs={})
    )
    assert envelope.endswith(b"{}}"), envelope
    return [envelope[:-2], *members, b"}}"]
