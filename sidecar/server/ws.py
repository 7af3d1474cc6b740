"""``GET /ws/training/{job_id}``: a snapshot, then merge patches, until the job completes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

from aiohttp import WSCloseCode, WSMsgType, web

from sidecar.core.contract import is_valid_job_id
from sidecar.core.hub import DirectSend, JobHub, Subscription, TooManyClients, UnknownJob, Version
from sidecar.server.access import BEARER, client_address
from sidecar.server.keys import HUB, METRICS, SETTINGS, SOCKETS
from sidecar.server.metrics import Metrics

logger = logging.getLogger(__name__)

CLOSE_INVALID: Final = 4400
CLOSE_UNKNOWN: Final = 4404
MAX_INCOMING_BYTES: Final = 64 * 1024
# Frames up to this size are read and refused with 1003; aiohttp closes beyond it (1009).
HARD_INCOMING_LIMIT: Final = 1 << 20
CLOSE_HANDSHAKE_TIMEOUT: Final = 2.0


async def open_socket(request: web.Request) -> web.WebSocketResponse:
    """Complete a WebSocket handshake (the access middleware has let the request in)."""
    settings = request.app[SETTINGS]
    # compress=False: frames are small, and deflate per connection would cost each client
    # its own copy of bytes that are otherwise encoded once per job.
    ws = web.WebSocketResponse(
        heartbeat=settings.heartbeat,
        compress=False,
        max_msg_size=HARD_INCOMING_LIMIT,
        timeout=CLOSE_HANDSHAKE_TIMEOUT,
        protocols=(BEARER,),  # echoed when a browser sends its token as ["bearer", token]
    )
    await ws.prepare(request)
    return ws


async def training_socket(request: web.Request) -> web.WebSocketResponse:
    """Stream one job's state to one client."""
    settings = request.app[SETTINGS]
    hub = request.app[HUB]
    ws = await open_socket(request)
    job_id = request.match_info["job_id"]
    fmt = request.query.get("format", "patch")
    history = request.query.get("history", "0")
    subscription = _subscribe(hub, job_id, fmt, history, address=client_address(request))
    if isinstance(subscription, tuple):
        code, reason = subscription
        await ws.close(code=code, message=reason.encode())
        return ws
    sockets = request.app[SOCKETS]
    sockets.add(ws)
    reader = asyncio.create_task(read_until_closed(ws, subscription.wake))
    try:
        await _send_updates(request, ws, subscription, reader, settings.send_timeout)
    finally:
        # Release first: aiohttp cancels this handler when the connection is lost, and the
        # await below is where that cancellation would land.
        hub.unsubscribe(subscription)
        sockets.discard(ws)
        reader.cancel()
        release(ws)
        await asyncio.wait([reader])
    return ws


def release(ws: web.WebSocketResponse) -> None:
    """Close a socket whose handler is ending, without waiting for it."""
    if not ws.closed:
        # A connection lost mid-stream leaves aiohttp's heartbeat timer holding the socket's
        # objects until it fires (20 s); closing releases them now.
        _detach(ws.close(code=WSCloseCode.GOING_AWAY))


_detached: set[asyncio.Task[Any]] = set()


def _detach(coroutine: Coroutine[Any, Any, Any]) -> None:
    """Run ``coroutine`` to its end even if the caller is cancelled."""
    task = asyncio.ensure_future(coroutine)
    _detached.add(task)
    task.add_done_callback(_detached.discard)


async def read_until_closed(ws: web.WebSocketResponse, on_end: Callable[[], None]) -> None:
    """Consume what the client sends so that pings and closes work; ``on_end`` when it is over.

    Nothing is expected: text is ignored; binary frames and text over 64 KiB close the
    connection with 1003.
    """
    try:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                await ws.close(
                    code=WSCloseCode.UNSUPPORTED_DATA, message=b"binary frames not accepted"
                )
            elif message.type == WSMsgType.TEXT and len(message.data) > MAX_INCOMING_BYTES:
                await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"message too big")
    finally:
        on_end()


def _subscribe(
    hub: JobHub, job_id: str, fmt: str, history: str, *, address: str | None
) -> Subscription | tuple[int, str]:
    if not is_valid_job_id(job_id):
        return CLOSE_INVALID, "invalid job id"
    if fmt not in ("patch", "full"):
        return CLOSE_INVALID, "invalid format: use patch or full"
    if history not in ("0", "1"):
        return CLOSE_INVALID, "invalid history: use 0 or 1"
    try:
        return hub.subscribe(job_id, full=fmt == "full", history=history == "1", address=address)
    except UnknownJob:
        return CLOSE_UNKNOWN, "unknown job"
    except TooManyClients as e:
        return WSCloseCode.TRY_AGAIN_LATER, str(e)


async def _send_updates(
    request: web.Request,
    ws: web.WebSocketResponse,
    subscription: Subscription,
    reader: asyncio.Task[None],
    send_timeout: float,
) -> None:
    """Send each new version (the latest only, when the client lags) until the end."""
    metrics = request.app[METRICS]
    history = _HistoryCursor() if subscription.history else None
    if not subscription.full and history is None:
        subscription.direct = _direct_sender(request, ws, metrics)
    while True:
        await subscription.wait()
        if reader.done():
            return
        version = subscription.version
        if version is None:
            await ws.close(code=CLOSE_UNKNOWN, message=b"job removed")
            return
        subscription.busy = True
        try:
            if not await _catch_up(request, ws, subscription, version, history, send_timeout):
                return
        finally:
            subscription.busy = False
        if version.complete:
            await ws.close(code=WSCloseCode.OK, message=b"job complete")
            return


async def _catch_up(
    request: web.Request,
    ws: web.WebSocketResponse,
    subscription: Subscription,
    version: Version,
    history: _HistoryCursor | None,
    send_timeout: float,
) -> bool:
    """Bring one client to ``version``: the snapshot first, then history, then a patch."""
    metrics = request.app[METRICS]
    sent = subscription.sent
    if sent is None:
        if not await _send(request, ws, subscription, version.snapshot_frame(), send_timeout):
            return False
        metrics.send.messages["snapshot"] += 1
        sent = subscription.sent = version
    if history is not None and (log := history.frame(subscription, at=sent)) is not None:
        if not await _send(request, ws, subscription, log, send_timeout):
            return False
        metrics.send.messages["log"] += 1
    if version.seq != sent.seq:
        kind = "snapshot" if subscription.full else "patch"
        frame = version.snapshot_frame() if subscription.full else version.patch_frame(sent)
        metrics.send.coalesced += max(0, version.index - sent.index - 1)
        if not await _send(request, ws, subscription, frame, send_timeout):
            return False
        metrics.send.messages[kind] += 1
        metrics.event_to_send.observe(time.monotonic() - version.created)
        subscription.sent = version
    return True


def _direct_sender(request: web.Request, ws: web.WebSocketResponse, metrics: Metrics) -> DirectSend:
    """A sender that writes a patch frame straight to the socket when nothing is queued there.

    It never waits: a connection with unsent bytes (a slow reader) is left to its own sender,
    which has the timeout. Server frames are not masked and compression is off, so a frame is
    its header and the shared bytes (RFC 6455, section 5.2).
    """

    def send(version: Version, previous: Version) -> bool:
        transport = request.transport
        if ws.closed or transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size():
            return False
        frame = version.patch_frame(previous)
        transport.write(_text_frame_header(len(frame)) + frame)
        metrics.send.messages["patch"] += 1
        metrics.event_to_send.observe(time.monotonic() - version.created)
        return True

    return send


def _text_frame_header(length: int) -> bytes:
    if length < 126:
        return bytes((0x81, length))
    if length < 1 << 16:
        return bytes((0x81, 126)) + length.to_bytes(2, "big")
    return bytes((0x81, 127)) + length.to_bytes(8, "big")


class _HistoryCursor:
    """What of a job's history one connection has sent."""

    def __init__(self) -> None:
        self.generation: int | None = None
        self.seen = 0

    def frame(self, subscription: Subscription, *, at: Version) -> bytes | None:
        """A log message with what this connection has not had yet; always one at the start."""
        log = subscription.history_log
        if log is None:
            if self.generation is not None:
                return None
            self.generation = -1
            return at.log_frame([])
        if log.generation != self.generation:
            reset = self.generation is not None
            self.generation, self.seen = log.generation, log.total
            return at.log_frame(list(log.entries), reset=reset)
        if log.total == self.seen:
            return None
        entries, self.seen = log.since(self.seen), log.total
        return at.log_frame(entries)


async def _send(
    request: web.Request,
    ws: web.WebSocketResponse,
    subscription: Subscription,
    frame: bytes,
    send_timeout: float,
) -> bool:
    """Send one frame; False when the connection is gone or was dropped for not reading."""
    try:
        async with asyncio.timeout(send_timeout):
            await ws.send_frame(frame, WSMsgType.TEXT)
    except TimeoutError:
        logger.warning(
            "job %s: client %s read nothing for %.1f s; dropping it",
            subscription.job_id,
            request.remote,
            send_timeout,
        )
        request.app[METRICS].send.send_timeouts += 1
        if request.transport is not None:
            request.transport.abort()
        return False
    except ConnectionError:
        return False
    return True


async def close_all(sockets: set[web.WebSocketResponse], *, timeout: float) -> None:
    """Close every socket with 1001, waiting at most ``timeout`` for the handshakes."""
    closing = [
        asyncio.create_task(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down"))
        for ws in list(sockets)
    ]
    if closing:
        _done, pending = await asyncio.wait(closing, timeout=timeout)
        for task in pending:
            task.cancel()
