"""The HTTP server around the app: as many connections as the open-file limit carries, a
deadline for each request's headers, and a short answer to a malformed request.

aiohttp leaves a connection that never completes a request open for an hour and answers a
malformed one with a traceback in the log and the offending request line in the body; a few
hundred trickling connections then take every descriptor. Here:

- a connection has ``HEADER_TIMEOUT`` seconds to complete a request, and as long again between
  two requests (aiohttp's keep-alive timer, which also runs from the connection's start);
- a response the client does not take within ``WRITE_TIMEOUT`` seconds drops the connection
  (a client that pipelines requests and never reads would hold it for ever);
- past ``max_connections`` a new connection is answered 503 and closed at once, so that
  ``accept()`` never runs out of descriptors and the files the sidecar reads still open (asyncio
  accepts a batch per turn of the event loop, ``accept_batch``, and hands over a batch's worth
  of connections before the first of them reaches this count: the reserve is four batches
  (``fd_reserve``); the kernel's queue of
  connections not yet accepted, ``LISTEN_QUEUE``, is long, so that a crowd reconnecting at once
  waits there, not in SYN retransmits);
- a malformed request costs one warning line (no traceback) and a body without its text.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
import weakref
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any, Final, Protocol

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

logger = logging.getLogger(__name__)

HEADER_TIMEOUT: Final = 5.0
"""Seconds a connection has to send a whole request (and stays open, idle, after one)."""
WRITE_TIMEOUT: Final = 10.0
"""Seconds a client has to take a whole HTTP response."""
BACKLOG: Final = 32
"""The fewest connections asyncio accepts in one go (it takes its listen backlog for that)."""
MAX_ACCEPT_BATCH: Final = 1024
"""The most it accepts in one go, where the open-file limit leaves room (``accept_batch``)."""
LISTEN_QUEUE: Final = 65535
"""Connections the kernel holds until they are accepted: as many as net.core.somaxconn allows
(4,096 by default). Clients that reconnect together after a restart wait here: past it, the
kernel drops their handshakes, and each tries again only after 1 s, then 3 s."""
OTHER_FILES: Final = 64
"""Descriptors for what is not a connection: progress and history files, inotify, the
listening sockets, threads, the log."""
FD_RESERVE: Final = 4 * BACKLOG + OTHER_FILES
"""Descriptors kept from connections at the lowest limits (``fd_reserve``)."""
HTTP_RESERVE: Final = 16
"""Connections kept for REST and health checks when every WebSocket client is connected."""
MIN_OPEN_FILES: Final = FD_RESERVE + HTTP_RESERVE + 16
"""Below this open-file limit the sidecar refuses to start."""
BUSY = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class HasFileno(Protocol):
    def fileno(self) -> int: ...


def lengthen_listen_queue(sockets: Iterable[HasFileno]) -> None:
    """Let the kernel hold ``LISTEN_QUEUE`` connections for these listening sockets, which
    asyncio listened on with ``BACKLOG`` (it still accepts that many per turn)."""
    for listening in sockets:
        # listen() again on a duplicate: the queue belongs to the socket, not the descriptor.
        with socket.socket(fileno=os.dup(listening.fileno())) as duplicate:
            duplicate.listen(LISTEN_QUEUE)


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one; returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            logger.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, e)
    return soft


def open_files_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def accept_batch(open_files: int) -> int:
    """The connections asyncio accepts in one go under this open-file limit: a 64th of it,
    from ``BACKLOG`` to ``MAX_ACCEPT_BATCH``. A crowd of clients is taken from the kernel's
    queue a batch per turn of the event loop: with 32, 10,000 at once overflowed the queue."""
    return max(BACKLOG, min(MAX_ACCEPT_BATCH, open_files // 64))


def fd_reserve(open_files: int) -> int:
    """Descriptors kept for what is not a counted connection: connections accepted but not yet
    counted or refused (asyncio accepts up to ``accept_batch`` per turn of the event loop, and a
    refused connection's descriptor is closed three turns later), and ``OTHER_FILES``."""
    return 4 * accept_batch(open_files) + OTHER_FILES


def connection_budget(open_files: int) -> int:
    """Connections (WebSocket and HTTP) that ``open_files`` descriptors carry."""
    return max(open_files - fd_reserve(open_files), HTTP_RESERVE + 1)


def clients_that_fit(max_clients: int, open_files: int) -> int:
    """``max_clients``, or fewer if the descriptors would run out first."""
    return max(1, min(max_clients, connection_budget(open_files) - HTTP_RESERVE))


class _RequestHandler(RequestHandler):
    def __init__(self, *args: Any, write_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.write_timeout = write_timeout

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        try:
            async with asyncio.timeout(self.write_timeout):
                return await super().finish_response(request, resp, start_time)
        except TimeoutError:
            logger.warning(
                "client %s took no response for %.1f s; dropping it",
                request.remote,
                self.write_timeout,
            )
            if self.transport is not None:
                self.transport.abort()  # close() would wait for the unread bytes to go
            self.force_close()
            return resp, True

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:  # a fault of ours: aiohttp logs it with its traceback
            return super().handle_error(request, status, exc, message)
        # The parser's message quotes the request line, which may hold the token.
        logger.warning(
            "malformed request from %s: %d %s",
            request.remote,
            status,
            type(exc).__name__ if exc is not None else "",
        )
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        response = web.Response(status=status, text=f"{status} {HTTPStatus(status).phrase}\n")
        response.force_close()
        return response


class _Refusal(asyncio.Protocol):
    """A connection over the limit: answered 503 and closed, never seen by aiohttp."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(BUSY)
        transport.close()


class _Server(web.Server):
    def __init__(
        self, *args: Any, max_connections: int, write_timeout: float, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections
        self.write_timeout = write_timeout
        self.refused = 0
        # Handlers made for connections that asyncio has accepted but not yet handed over:
        # several are made before the first of them is connected.
        self._starting: weakref.WeakSet[RequestHandler] = weakref.WeakSet()

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        self._starting.discard(handler)
        super().connection_made(handler, transport)

    def __call__(self) -> RequestHandler | _Refusal:  # type: ignore[override]
        # aiohttp's ``connections`` copies them all into a list: a crowd of 10,000 made that
        # 50 million copies. Its dict's length is the same count.
        if len(self._connections) + len(self._starting) >= self.max_connections:
            if not self.refused:
                logger.warning(
                    "%d connections open, the most the open-file limit allows; refusing more",
                    self.max_connections,
                )
            self.refused += 1
            return _Refusal()
        if self.refused:
            logger.warning("accepting connections again (%d refused)", self.refused)
            self.refused = 0
        handler = _RequestHandler(
            self, loop=self._loop, write_timeout=self.write_timeout, **self._kwargs
        )
        self._starting.add(handler)
        return handler


class SidecarRunner(web.AppRunner):
    """``web.AppRunner`` with the limits above.

    Args:
        app: the application.
        max_connections: connections beyond this are refused (503); by default what the
            process's open-file limit carries.
        header_timeout: seconds a connection has to send a whole request.
        write_timeout: seconds a client has to take a whole HTTP response.
        kwargs: as for ``web.AppRunner``.
    """

    def __init__(
        self,
        app: web.Application,
        *,
        max_connections: int | None = None,
        header_timeout: float = HEADER_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        kwargs["keepalive_timeout"] = header_timeout
        super().__init__(app, **kwargs)
        self.max_connections = max_connections or connection_budget(open_files_limit())
        self.write_timeout = write_timeout

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()  # starts the app
        return _Server(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            max_connections=self.max_connections,
            write_timeout=self.write_timeout,
            **made._kwargs,
        )
