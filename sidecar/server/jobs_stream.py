"""``GET /ws/jobs``: every job's summary, then merge patches by job, for the dashboard's list.

The messages are the list feed's (``core.jobs_feed``, ticked by ``server.jobs_feed``), the same
bytes for every dashboard. A dashboard's first message is the snapshot of the tick after it came
(the current one when nothing changed since), then each tick's patch: handed to its connection
at once by the tick while it keeps up, or sent here, in order, when it was busy. One that fell
further behind than the kept patches go gets the latest snapshot in their place.
"""

from __future__ import annotations

from aiohttp import web

from sidecar.core.hub import JobHub
from sidecar.core.jobs_feed import ListViewer
from sidecar.core.protocol import PATCH, SNAPSHOT
from sidecar.server.access import client_address
from sidecar.server.fragments import send_pieces
from sidecar.server.jobs_feed import LIST_SNAPSHOTS
from sidecar.server.keys import HUB, METRICS
from sidecar.server.sockets import ClientSocket, admit, client_left, open_socket, serving


async def jobs_socket(request: web.Request) -> web.StreamResponse:
    """Stream the jobs list: a ``snapshot`` of every summary, then ``patch`` messages."""
    hub = request.app[HUB]
    ws = await open_socket(request)
    if ws is None:
        return client_left()
    address = client_address(request)
    viewer = await admit(ws, lambda: hub.join_list(address=address))
    if viewer is None:
        return ws
    async with serving(
        request, ws, peer="jobs list", on_end=viewer.wake, leave=lambda: hub.leave_list(viewer)
    ) as client:
        await _follow(client, hub, viewer)
    return ws


async def _follow(client: ClientSocket, hub: JobHub, viewer: ListViewer) -> None:
    """Send the snapshot, then every message of the list, until the end."""
    feed = hub.list_feed
    sent = client.request.app[METRICS].send.messages
    snapshots = client.request.app[LIST_SNAPSHOTS]

    def direct(frame: bytes) -> bool:
        if not client.writable:
            return False
        client.write_frame(frame)
        sent[f"jobs_{PATCH}"] += 1
        return True

    came_at = feed.ticks
    while not feed.up_to_date and feed.ticks == came_at:  # what changed before it came
        await viewer.wait()
        if client.gone:
            return
    viewer.direct = direct
    while True:
        behind = None if viewer.seq is None else feed.since(viewer.seq)
        viewer.busy = True
        try:
            if behind is None:
                snapshot = await snapshots.get()
                if not await send_pieces(client, snapshot.pieces):
                    return
                sent[f"jobs_{SNAPSHOT}"] += 1
                viewer.seq = snapshot.seq
            for message in behind or ():
                if not await send_pieces(client, message.pieces):
                    return
                sent[f"jobs_{PATCH}"] += 1
                viewer.seq = message.seq
        finally:
            viewer.busy = False
        await viewer.wait()
        if client.gone:
            return
