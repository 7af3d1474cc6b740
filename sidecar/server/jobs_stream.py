"""``GET /ws/jobs``: every job's summary, then merge patches by job, for the dashboard's list."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from aiohttp import WSCloseCode, WSMsgType, web

from sidecar.core.codec import JSONObject, drop_nulls, encode
from sidecar.core.contract import isoformat_utc
from sidecar.core.hub import JobHub, TooManyClients
from sidecar.core.patch import merge_patch
from sidecar.server.access import client_address
from sidecar.server.keys import HUB, METRICS, SETTINGS, SOCKETS
from sidecar.server.ws import open_socket, read_until_closed, release

logger = logging.getLogger(__name__)

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
    settings, hub = request.app[SETTINGS], request.app[HUB]
    ws = await open_socket(request)
    try:
        watch = hub.watch_jobs(address=client_address(request))
    except TooManyClients as e:
        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=str(e).encode())
        return ws
    request.app[SOCKETS].add(ws)
    reader = asyncio.create_task(read_until_closed(ws, watch.wake.set))
    metrics = request.app[METRICS]
    sent: dict[str, JSONObject] = {}
    seq = 0
    try:
        while True:
            changed = await watch.take()
            if reader.done():
                return ws
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
                kind = "snapshot" if seq == 1 else "patch"
                message = {
                    "type": kind,
                    "seq": seq,
                    "timestamp": isoformat_utc(time.time()),
                    "jobs": patch,
                }
                try:
                    async with asyncio.timeout(settings.send_timeout):
                        await ws.send_frame(encode(message), WSMsgType.TEXT)
                except (TimeoutError, ConnectionError):
                    return ws
                metrics.send.messages[f"jobs_{kind}"] += 1
            await asyncio.sleep(MIN_INTERVAL)
    finally:
        hub.unwatch_jobs(watch)
        request.app[SOCKETS].discard(ws)
        reader.cancel()
        release(ws)
        await asyncio.wait([reader])
