"""Who may use the sidecar: the bearer token and the browser origins allowed in (with CORS)."""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Middleware

from sidecar.rest import json_error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BEARER = "bearer"
"""The WebSocket subprotocol that carries a token for browsers: ``["bearer", token]``."""


PUBLIC_PREFIX = "/static/"
"""Code and styles, no data: open to any page on any origin (the browser client lives here)."""


def presented_token(request: web.BaseRequest) -> str | None:
    """The token a request carries: ``Authorization: Bearer``, ``?token=``, or the subprotocols
    ``bearer, <token>`` (browsers can set no header on a WebSocket)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == BEARER and value.strip():
        return value.strip()
    if "token" in request.query:
        return request.query["token"]
    protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if len(protocols) >= 2 and protocols[0].lower() == BEARER and protocols[1]:
        return protocols[1]
    return None


def token_matches(presented: str | None, expected: str) -> bool:
    """Compare in constant time, so that timing tells nothing of the token."""
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def authorized(request: web.BaseRequest, token: str | None) -> bool:
    return token is None or token_matches(presented_token(request), token)


def request_origin(request: web.BaseRequest) -> str:
    """The origin the request was sent to, as a browser writes an ``Origin`` header."""
    return f"{request.scheme}://{request.host}".lower()


def origin_allowed(origin: str, *, own: str, allowed: frozenset[str]) -> bool:
    """Same-origin, or on the list (``*`` allows every origin)."""
    origin = origin.lower()
    return origin == own or "*" in allowed or origin in allowed


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def access_control(*, token: str | None, allowed_origins: frozenset[str]) -> Middleware:
    """The middleware: refuse foreign origins (403, before any WebSocket upgrade), answer CORS
    preflights for allowed ones, and ask REST requests for the token (401). WebSocket
    handlers check the token themselves, after the handshake, to close with 4401."""
    allowed = frozenset(o.lower().rstrip("/") for o in allowed_origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(PUBLIC_PREFIX):
            return await handler(request)
        origin = request.headers.get("Origin")
        own = request_origin(request)
        if origin is not None and not origin_allowed(origin, own=own, allowed=allowed):
            return json_error(403, "origin not allowed")
        cross = origin is not None and origin.lower() != own
        if cross and request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204)
            response.headers.update(
                {
                    "Access-Control-Allow-Methods": "GET, OPTIONS",
                    "Access-Control-Allow-Headers": "Authorization",
                    "Access-Control-Max-Age": "600",
                }
            )
        elif token is not None and not _is_websocket(request) and not authorized(request, token):
            response = json_error(401, "unauthorized")
            response.headers["WWW-Authenticate"] = 'Bearer realm="progress-sidecar"'
        else:
            response = await handler(request)
        if cross and origin is not None and not response.prepared:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    return middleware


_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&]*")


def redact(path_qs: str) -> str:
    """A request's path and query with any ``token`` value hidden."""
    return _TOKEN_IN_QUERY.sub(r"\1***", path_qs)


class AccessLogger(AbstractAccessLogger):
    """One line per request, with tokens redacted (aiohttp's own logger would write them)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug(
            '%s "%s %s" %s %.1f ms',
            request.remote,
            request.method,
            redact(request.path_qs),
            response.status,
            time * 1000,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)
