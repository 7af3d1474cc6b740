"""The socket layer under both WebSocket endpoints: handshake, admission, registration and
release, the reader, and one send with one timeout policy.

A handler opens the socket (the access middleware has already let the request in), asks the
hub to admit it, then streams inside ``serving``. Backpressure policy: a client that reads
nothing for ``--send-timeout`` seconds is dropped, with a warning and a count in the metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

from aiohttp import WSMsgType, web

from sidecar.core.client_limits import TooManyClients
from sidecar.core.protocol import (
    BINARY_REFUSED,
    MESSAGE_TOO_BIG,
    SHUTTING_DOWN,
    Close,
    CloseCode,
    text_frame,
)
from sidecar.server.access import BEARER
from sidecar.server.keys import METRICS, SETTINGS, SOCKETS

logger = logging.getLogger(__name__)

MAX_INCOMING_BYTES: Final = 64 * 1024
# Frames up to this size are read and refused with 1003; aiohttp closes beyond it (1009).
HARD_INCOMING_LIMIT: Final = 1 << 20
CLOSE_HANDSHAKE_TIMEOUT: Final = 2.0

T = TypeVar("T")


def client_left() -> web.StreamResponse:
    """What a handler answers a client that left during its handshake: nothing reaches it
    (aiohttp takes the failed write for a premature disconnection), and the access log says
    499, as nginx logs a client that closed its request."""
    return web.Response(status=499, reason="Client Closed Request")


async def open_socket(request: web.Request) -> web.WebSocketResponse | None:
    """Complete a WebSocket handshake (the access middleware has let the request in); None
    when the client left before the answer could go out (the handler then has nothing to
    serve: a client that resets at once is routine, not a server error)."""
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
    try:
        await ws.prepare(request)
    except ConnectionResetError:
        logger.debug("client %s left during the WebSocket handshake", request.remote)
        return None
    return ws


async def admit(ws: web.WebSocketResponse, join: Callable[[], T | Close]) -> T | None:
    """``join()``, which subscribes to the hub; None when it refused, the socket then closed
    with the refusal: the ``Close`` it returned, or 1013 when a client limit is reached."""
    try:
        joined = join()
    except TooManyClients as e:
        joined = Close(CloseCode.TRY_AGAIN_LATER, str(e))
    if isinstance(joined, Close):
        await ws.close(code=joined.code, message=joined.message)
        return None
    return joined


class ClientSocket:
    """An open, registered client socket and what reads it.

    Args:
        request: the request the socket answered.
        ws: the socket.
        peer: what the client follows, for the log: ``job <id>`` or ``jobs list``.
        reader: the task reading what the client sends.
    """

    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        *,
        peer: str,
        reader: asyncio.Task[None],
    ) -> None:
        self.request = request
        self.ws = ws
        self.peer = peer
        self.reader = reader

    @property
    def gone(self) -> bool:
        """The client closed, or its connection was lost."""
        return self.reader.done()

    async def close(self, close: Close) -> None:
        await self.ws.close(code=close.code, message=close.message)

    async def send(self, frame: bytes) -> bool:
        """Send one text frame; False when the connection is gone or was dropped for not
        reading within ``--send-timeout`` (a warning, counted in the metrics)."""
        app = self.request.app
        timeout = app[SETTINGS].send_timeout
        try:
            async with asyncio.timeout(timeout):
                await self.ws.send_frame(frame, WSMsgType.TEXT)
        except TimeoutError:
            self.drop_for_not_reading(timeout)
            return False
        except ConnectionError:
            return False
        return True

    def drop_for_not_reading(self, timeout: float) -> None:
        """Drop a client that took nothing for ``timeout`` seconds: a warning, counted."""
        logger.warning(
            "%s: client %s read nothing for %.1f s; dropping it",
            self.peer,
            self.request.remote,
            timeout,
        )
        self.request.app[METRICS].send.send_timeouts += 1
        if self.request.transport is not None:
            self.request.transport.abort()

    @property
    def writable(self) -> bool:
        """Whether a write would go out now: the connection is open and nothing waits to be
        sent on it (a slow reader is left to ``send``, which has the timeout)."""
        transport = self.request.transport
        if self.ws.closed or transport is None or transport.is_closing():
            return False
        return not transport.get_write_buffer_size()

    def write(self, message: bytes) -> None:
        """Write ``message`` as a text frame straight to the transport, without waiting; only
        when ``writable``. Server frames are not masked and compression is off, so a frame is
        its header and the message's bytes, shared by every client (RFC 6455 section 5.2)."""
        self.write_frame(text_frame(message))

    def write_frame(self, frame: bytes) -> None:
        """Write a whole frame (``text_frame``) straight to the transport; only when
        ``writable``."""
        transport = self.request.transport
        assert transport is not None
        transport.write(frame)


@asynccontextmanager
async def serving(
    request: web.Request,
    ws: web.WebSocketResponse,
    *,
    peer: str,
    on_end: Callable[[], None],
    leave: Callable[[], None],
) -> AsyncIterator[ClientSocket]:
    """Register an admitted socket and read it while the body streams; release it after.

    Args:
        request: the request the socket answered.
        ws: the socket, admitted.
        peer: what the client follows, for the log: ``job <id>`` or ``jobs list``.
        on_end: called when the client is gone (closed, lost), to wake the streaming body.
        leave: gives back what ``admit`` took in the hub; called first, before any await.
    """
    sockets = request.app[SOCKETS]
    sockets.add(ws)
    reader = asyncio.create_task(read_until_closed(ws, on_end))
    try:
        yield ClientSocket(request, ws, peer=peer, reader=reader)
    finally:
        # Release first: aiohttp cancels the handler when the connection is lost, and the
        # await below is where that cancellation would land.
        leave()
        sockets.discard(ws)
        reader.cancel()
        release(ws)
        await asyncio.wait([reader])


async def read_until_closed(ws: web.WebSocketResponse, on_end: Callable[[], None]) -> None:
    """Consume what the client sends so that pings and closes work; ``on_end`` when it is over.

    Nothing is expected: text is ignored; binary frames and text over 64 KiB close the
    connection with 1003.
    """
    try:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                await ws.close(code=BINARY_REFUSED.code, message=BINARY_REFUSED.message)
            elif message.type == WSMsgType.TEXT and len(message.data) > MAX_INCOMING_BYTES:
                await ws.close(code=MESSAGE_TOO_BIG.code, message=MESSAGE_TOO_BIG.message)
    finally:
        on_end()


def release(ws: web.WebSocketResponse) -> None:
    """Close a socket whose handler is ending, without waiting for it."""
    if not ws.closed:
        # A connection lost mid-stream leaves aiohttp's heartbeat timer holding the socket's
        # objects until it fires (20 s); closing releases them now.
        _detach(ws.close(code=CloseCode.GOING_AWAY))


_detached: set[asyncio.Task[Any]] = set()


def _detach(coroutine: Coroutine[Any, Any, Any]) -> None:
    """Run ``coroutine`` to its end even if the caller is cancelled."""
    task = asyncio.ensure_future(coroutine)
    _detached.add(task)
    task.add_done_callback(_detached.discard)


async def close_all(sockets: set[web.WebSocketResponse], *, timeout: float) -> None:
    """Close every socket with 1001, waiting at most ``timeout`` for the handshakes."""
    closing = [
        asyncio.create_task(ws.close(code=SHUTTING_DOWN.code, message=SHUTTING_DOWN.message))
        for ws in list(sockets)
    ]
    if closing:
        _done, pending = await asyncio.wait(closing, timeout=timeout)
        for task in pending:
            task.cancel()
