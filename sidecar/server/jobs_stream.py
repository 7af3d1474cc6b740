"""``GET /ws/jobs``: every job's summary, then merge patches by job, for the dashboard's list."""

from __future__ import annotations

import asyncio
import time
from typing import Final

from aiohttp import web

from sidecar.core.codec import JSONObject, drop_nulls, encode
from sidecar.core.contract import isoformat_utc
from sidecar.core.hub import JobHub
from sidecar.core.patch import merge_patch
from sidecar.core.protocol import PATCH, SNAPSHOT, MessageType, jobs_list_message
from sidecar.core.subscription import JobsWatch
from sidecar.server.access import client_address
from sidecar.server.keys import HUB, METRICS
from sidecar.server.sockets import ClientSocket, admit, open_socket, serving

# At most this many list messages a second per client: a list of a thousand busy jobs would
# otherwise send one message per file write.
MIN_INTERVAL: Final = 0.1


def _summaries(hub: JobHub, job_ids: set[str]) -> dict[str, JSONObject | None]:
    summaries: dict[str, JSONObject | None] = {}
    for job_id in job_ids:
        state = hub.get(job_id)
        summaries[job_id] = drop_nulls(state.summary()) if state is not None else None
    return summaries


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
    """Send the summaries that changed, at most every ``MIN_INTERVAL``, until the end."""
    metrics = client.request.app[METRICS]
    sent: dict[str, JSONObject] = {}
    seq = 0
    while True:
        changed = await watch.take()
        if client.gone:
            return
        patch: JSONObject = {}
        for job_id, summary in _summaries(hub, changed).items():
            before = sent.get(job_id)
            if summary is None:
                if before is not None:
                    patch[job_id] = None
                    del sent[job_id]
            elif before is None or (diff := merge_patch(before, summary)):
                patch[job_id] = summary if before is None else diff
                sent[job_id] = summary
        if patch or seq == 0:
            seq += 1
            kind: MessageType = SNAPSHOT if seq == 1 else PATCH
            message = jobs_list_message(
                kind, seq=seq, timestamp=isoformat_utc(time.time()), jobs=patch
            )
            if not await client.send(encode(message)):
                return
            metrics.send.messages[f"jobs_{kind}"] += 1
        await asyncio.sleep(MIN_INTERVAL)
