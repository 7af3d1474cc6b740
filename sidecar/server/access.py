"""Who may use the sidecar: one access decision for every request, made in one place.

The middleware decides before any handler runs, in this order, from what the request is and
which route it matched (never from a header that says what kind of request it is):

1. the ``Host``: on a loopback listener only loopback names (and ``--allowed-host``) get in,
   so a page whose DNS name is rebound to 127.0.0.1 is refused (403);
2. the ``Origin``: a browser page from another origin gets in only if it is allowed (403);
3. the token: every route but the static files (code and styles, no data) needs it (401; a
   WebSocket route completes the handshake first and closes with 4401, which a browser can
   see and an HTTP status it cannot).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Middleware

from sidecar.core.protocol import UNAUTHORIZED
from sidecar.server.logs import redact_query
from sidecar.server.rest import json_error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BEARER: Final = "bearer"
"""The WebSocket subprotocol that carries a token for browsers: ``["bearer", token]``."""

LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})


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
    if presented is None:
        return False
    # A header with bytes that are not UTF-8 reaches here with surrogates: no match, no error.
    given = presented.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, expected.encode("utf-8", "surrogateescape"))


def host_name(host: str) -> str:
    """The name in a ``Host`` header, without its port, lowercase (``[::1]:80`` gives ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        # Only a port may follow the brackets; anything else is no name at all.
        return name if not rest or (rest[:1] == ":" and rest[1:].isdigit()) else host
    name, _, port = host.rpartition(":")
    name = name if name and port.isdigit() and ":" not in name else host
    return name.removesuffix(".")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address to listen on, or a name in a ``Host`` header) is loopback."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin_host(origin: str) -> str:
    """The host name of an ``Origin`` (``http://localhost:3000`` gives ``localhost``)."""
    return host_name(origin.partition("://")[2].partition("/")[0])


@dataclass(frozen=True)
class AccessPolicy:
    """The rules, from the settings.

    Args:
        token: required on every route but ``/static/``; None: no token.
        allowed_origins: browser origins let in besides the sidecar's own (``*``: any).
        allowed_hosts: the names a client may reach the sidecar by (the ``Host`` header);
            None: any. Loopback names are always in it.
    """

    token: str | None
    allowed_origins: frozenset[str]
    allowed_hosts: frozenset[str] | None

    @classmethod
    def of(
        cls,
        *,
        token: str | None,
        allowed_origins: Collection[str],
        allowed_hosts: Collection[str],
        listen_host: str,
    ) -> AccessPolicy:
        """The policy for a sidecar listening on ``listen_host``: a loopback listener (or one
        given ``--allowed-host``) checks ``Host``; any other takes every name."""
        hosts: frozenset[str] | None = None
        if allowed_hosts or is_loopback(listen_host):
            hosts = LOOPBACK_NAMES | {host_name(h) for h in allowed_hosts}
        origins = frozenset(o.lower().rstrip("/") for o in allowed_origins)
        return cls(token=token, allowed_origins=origins, allowed_hosts=hosts)

    def host_allowed(self, host: str) -> bool:
        if self.allowed_hosts is None:
            return True
        name = host_name(host)
        return name in self.allowed_hosts or is_loopback(name)

    def origin_allowed(self, origin: str, *, own: str) -> bool:
        """Same-origin (``own``: where the request was sent, its host already checked), or on
        the list (``*`` allows every origin)."""
        origin = origin.lower().rstrip("/")
        if "*" in self.allowed_origins or origin in self.allowed_origins:
            return True
        return origin == own and self.host_allowed(origin_host(origin))

    def authorized(self, request: web.BaseRequest) -> bool:
        return self.token is None or token_matches(presented_token(request), self.token)


def client_address(request: web.BaseRequest) -> str | None:
    """Who a client is, for the per-address limits: its IP address; for IPv6 its /64, which
    one host usually holds whole (so rotating addresses in it buys nothing)."""
    remote = request.remote
    if remote is None:
        return None
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def request_origin(request: web.BaseRequest) -> str:
    """The origin the request was sent to, as a browser writes an ``Origin`` header."""
    return f"{request.scheme}://{request.host}".lower()


def access_control(
    policy: AccessPolicy, *, websockets: Collection[Handler], public: Collection[Handler]
) -> Middleware:
    """The middleware that applies ``policy`` to every request.

    Args:
        policy: the rules.
        websockets: the handlers of WebSocket routes: refused after the handshake (4401).
        public: the handlers that need no token and take any origin (static code and styles).
    """
    socket_handlers = frozenset(websockets)
    public_handlers = frozenset(public)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        # request.host comes from an absolute-form target (GET http://host/...) when there is
        # one, and from the Host header otherwise: both must name this sidecar.
        if not all(
            policy.host_allowed(h)
            for h in (request.host, request.headers.get("Host"))
            if h is not None
        ):
            return json_error(403, "host not allowed (see --allowed-host)")
        public = request.match_info.handler in public_handlers
        origin = request.headers.get("Origin")
        own = request_origin(request)
        if origin is not None and not public and not policy.origin_allowed(origin, own=own):
            return json_error(403, "origin not allowed")
        cross = origin is not None and origin.lower().rstrip("/") != own
        response: web.StreamResponse
        if cross and request.method == "OPTIONS":
            response = web.Response(status=204)
            response.headers.update(
                {
                    "Access-Control-Allow-Methods": "GET, OPTIONS",
                    "Access-Control-Allow-Headers": "Authorization",
                    "Access-Control-Max-Age": "600",
                }
            )
        elif public or policy.authorized(request):
            response = await handler(request)
        elif request.match_info.handler in socket_handlers:
            return await _refuse_socket(request)
        else:
            response = _unauthorized()
        if cross and origin is not None and not response.prepared:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    return middleware


async def _refuse_socket(request: web.Request) -> web.StreamResponse:
    """Close a WebSocket that lacks the token with 4401 (a 401 if it is no WebSocket request)."""
    ws = web.WebSocketResponse(protocols=(BEARER,), timeout=2.0)
    if not ws.can_prepare(request).ok:
        return _unauthorized()
    await ws.prepare(request)
    await ws.close(code=UNAUTHORIZED.code, message=UNAUTHORIZED.message)
    return ws


def _unauthorized() -> web.Response:
    response = json_error(401, UNAUTHORIZED.reason)
    response.headers["WWW-Authenticate"] = 'Bearer realm="progress-sidecar"'
    return response


class AccessLogger(AbstractAccessLogger):
    """One line per request, with tokens redacted (aiohttp's own logger would write them)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug(
            '%s "%s %s" %s %.1f ms',
            request.remote,
            request.method,
            redact_query(request),
            response.status,
            time * 1000,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)
