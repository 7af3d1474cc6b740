"""A Python client: follow one job's merged state, reconnecting as needed, until it completes.

async for state in follow_job("http://127.0.0.1:8765", "job_abc123"):
    print(state["status"], state.get("progress"))
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from sidecar.clients.errors import FollowError, InvalidURL, SidecarUnreachable, StreamError
from sidecar.clients.reconnection import Reconnection, is_final
from sidecar.clients.resume_point import LogCallback, ResumePoint
from sidecar.core.backoff import MAX_BACKOFF, MIN_BACKOFF, Backoff
from sidecar.core.codec import JSONObject, decode_document
from sidecar.core.protocol import UNAUTHORIZED, CloseCode
from sidecar.core.version import VersionId

__all__ = [
    "GIVE_UP_AFTER",
    "FollowError",
    "InvalidURL",
    "LogCallback",
    "RetryCallback",
    "SidecarUnreachable",
    "StreamError",
    "follow_job",
    "sidecar_url",
    "ws_url",
]

logger = logging.getLogger(__name__)

RetryCallback = Callable[[int | None, str], None]
"""Called before each pause to reconnect, with the close code (None when no WebSocket opened)
and the reason: 4404 while waiting for a job to appear, 1001 when the sidecar shut down..."""

GIVE_UP_AFTER = 60.0
"""``follow_job``'s default: seconds without contact with the sidecar before it gives up."""

_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
# What may be typed without a scheme: host[:port][/path], the host a name, an IPv4 or [IPv6].
_SCHEMELESS = re.compile(r"(?://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::\d+)?(?:/[^?#\s]*)?")


def sidecar_url(url: str) -> str:
    """The sidecar's base URL, ``http[s]://host[:port][/path]``, from what a user typed.

    ``host:port`` and ``//host:port`` mean ``http://host:port``; ``ws://`` and ``wss://`` mean
    ``http://`` and ``https://``.

    Raises:
        InvalidURL: another scheme, no host, a bad port, credentials, a query or a fragment.
    """
    text = url.strip()
    if "://" not in text:
        if not _SCHEMELESS.fullmatch(text):
            raise InvalidURL(url, "want http://host:port")
        text = "http:" + text if text.startswith("//") else "http://" + text
    try:
        parsed = URL(text)
    except ValueError as e:
        raise InvalidURL(url, str(e).lower()) from e
    scheme = _SCHEMES.get(parsed.scheme.lower())
    if scheme is None:
        raise InvalidURL(url, f"scheme {parsed.scheme!r} not supported: use http or https")
    if not parsed.host:
        raise InvalidURL(url, "no host")
    if parsed.user is not None or parsed.query_string or parsed.fragment:
        raise InvalidURL(url, "want http://host:port, without credentials, query or fragment")
    return str(parsed.with_scheme(scheme)).rstrip("/")


def ws_url(
    base_url: str, job_id: str, *, history: bool = False, since: VersionId | None = None
) -> str:
    """``ws://host:port/ws/training/<job_id>`` for a sidecar at ``http://host:port``.

    Args:
        base_url: the sidecar.
        job_id: the job.
        history: ask for the metrics history (``history=1``).
        since: the version ``(epoch, seq)`` of the state the client holds, to resume from
            (``since=EPOCH:SEQ``).

    Raises:
        InvalidURL: ``base_url`` is not a sidecar's URL (see ``sidecar_url``).
    """
    base = sidecar_url(base_url)
    base = "ws" + base[len("http") :]
    params = {}
    if history:
        params["history"] = "1"
    if since is not None:
        params["since"] = f"{since[0]}:{since[1]}"
    query = "?" + urlencode(params, safe=":") if params else ""
    return f"{base}/ws/training/{quote(job_id, safe='')}{query}"


def _failure(error: BaseException) -> str:
    """A short reason for a failed connection: ``connection refused``, not aiohttp's repr."""
    if isinstance(error, aiohttp.ClientConnectorError):
        cause = error.os_error
        if isinstance(cause, socket.gaierror) or not cause.errno:
            text = cause.strerror or str(cause) or type(cause).__name__
        else:
            text = os.strerror(cause.errno)
    elif isinstance(error, TimeoutError):
        text = "timed out"
    elif isinstance(error, aiohttp.ServerDisconnectedError):
        text = "server disconnected"
    else:
        text = str(error) or type(error).__name__
    return text[:1].lower() + text[1:]


def _refusal(error: aiohttp.WSServerHandshakeError, url: str) -> StreamError | None:
    """The final error for an answer that is no WebSocket; None when worth retrying (5xx)."""
    if error.status == 401:
        return StreamError(UNAUTHORIZED.code, UNAUTHORIZED.reason)
    if error.status == 403:
        return StreamError(403, "forbidden: host or origin not allowed")
    if error.status == 404:
        return StreamError(404, f"not found: is {url} a progress-sidecar?")
    if error.status >= 500:
        return None  # a proxy whose sidecar restarts, or is overloaded
    return StreamError(error.status, f"{url} is not a progress-sidecar: {error.message}")


async def follow_job(
    base_url: str,
    job_id: str,
    *,
    on_log: LogCallback | None = None,
    on_retry: RetryCallback | None = None,
    wait_for_job: bool = False,
    give_up_after: float | None = GIVE_UP_AFTER,
    token: str | None = None,
    min_backoff: float = MIN_BACKOFF,
    max_backoff: float = MAX_BACKOFF,
    session: aiohttp.ClientSession | None = None,
) -> AsyncIterator[JSONObject]:
    """Yield the job's whole state after each message, until a state with ``complete: true``.

    When the connection drops (or the sidecar restarts), it reconnects with exponential
    backoff and jitter, and resumes: it asks for the changes since the last state it had
    (``since=EPOCH:SEQ``), which come as one patch, or as a fresh snapshot when the sidecar
    no longer knows that state (a restarted sidecar). It gives up when
    ``give_up_after`` seconds pass without contact: from the start while no stream has been
    opened, from the drop once one was. Waiting for a job to appear (``wait_for_job``) has no
    limit: each "unknown job" answer is contact.

    Args:
        base_url: the sidecar, as ``http://host:port`` (``host:port``, https, ws and wss too).
        job_id: the job to follow.
        on_log: receives history entries; asks for ``history=1`` when given. After a
            reconnection the first call has the whole history again, with ``reset`` true: it
            replaces what came before (see ``LogCallback``).
        on_retry: called before each pause to reconnect (see ``RetryCallback``).
        wait_for_job: keep trying while the job does not exist yet (4404 before any state);
            without it an unknown job raises at once.
        give_up_after: seconds without contact before giving up; None: never. The default,
            a minute, rides out a sidecar restart and tells a dashboard of an outage.
        token: the sidecar's bearer token, if it has one.
        min_backoff: seconds the pauses before a reconnection double from (the first is
            between half of it and all of it: ``sidecar.core.backoff``).
        max_backoff: longest pause before a reconnection, in seconds.
        session: an aiohttp session to use (one is made otherwise).

    Raises:
        InvalidURL: ``base_url`` is not a sidecar's URL.
        StreamError: final refusals: 4400 (invalid job id), 4401 or HTTP 401 (the token is
            refused: reported as 4401), 403 (host or origin not allowed), another HTTP status
            but 5xx (not a sidecar), 4404 (the job was removed, or is unknown and
            ``wait_for_job`` is false); after ``give_up_after``, the last refusal that was
            worth retrying (1013, too many clients).
        SidecarUnreachable: no connection for ``give_up_after`` seconds.
        FollowError: the sidecar sent a message that is not a JSON object.
    """
    base = sidecar_url(base_url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    point = ResumePoint(on_log)
    retry = Reconnection(
        base,
        give_up_after=give_up_after,
        backoff=Backoff(base=min_backoff, cap=max_backoff),
        clock=asyncio.get_running_loop().time,
    )
    own = session is None
    http = session or aiohttp.ClientSession()
    try:
        while True:
            code: int | None = None
            streamed = False
            try:
                handshake = retry.handshake_timeout()
                url = ws_url(base, job_id, history=on_log is not None, since=point.version)
                ws = await _connect(http, url, headers, timeout=handshake)
                async with ws:
                    point.connected()
                    while isinstance(message := await _read_message(ws), dict):
                        state = point.take(message)
                        if state is None:
                            continue
                        retry.backoff.reset()
                        streamed = True
                        yield state
                        if state.get("complete") is True:
                            # A finished job's history comes after its final state: on_log
                            # has it before the end.
                            while point.log_due and isinstance(
                                message := await _read_message(ws), dict
                            ):
                                point.take(message)
                            return
                    reason = message
                    code = ws.close_code
            except aiohttp.WSServerHandshakeError as e:
                if (refusal := _refusal(e, base)) is not None:
                    raise refusal from e
                reason = f"http {e.status} {e.message}".strip()
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                reason = _failure(e)
            if code is not None and is_final(
                code, followed=point.state is not None, wait=wait_for_job
            ):
                raise StreamError(code, reason)
            delay = retry.pause(code, reason, contact=streamed or code == CloseCode.NOT_FOUND)
            logger.info(
                "job %s: stream ended (%s, %s); reconnecting in %.2f s", job_id, code, reason, delay
            )
            if on_retry is not None:
                on_retry(code, reason)
            await asyncio.sleep(delay)
    finally:
        if own:
            await http.close()


async def _connect(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], *, timeout: float
) -> aiohttp.ClientWebSocketResponse:
    """Open the stream; the opening handshake may take ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        return await http.ws_connect(url, heartbeat=30, headers=headers)


async def _read_message(ws: aiohttp.ClientWebSocketResponse) -> JSONObject | str:
    """The stream's next message, decoded; once the stream ends, why it did.

    Raises:
        FollowError: the message is not a JSON object.
    """
    while True:
        message = await ws.receive()
        if message.type == aiohttp.WSMsgType.CLOSE:
            return str(message.extra or "closed")
        if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return "connection lost"
        if message.type == aiohttp.WSMsgType.TEXT:
            try:
                # What a server sends is from outside too: the same boundary.
                data = decode_document(message.data.encode())
            except ValueError as e:
                raise FollowError(f"not a progress-sidecar stream: {e}") from e
            if not isinstance(data, dict):
                raise FollowError("not a progress-sidecar stream: not a json object")
            return data
