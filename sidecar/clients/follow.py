"""A Python client: follow one job's merged state, reconnecting as needed, until it completes.

async for state in follow_job("http://127.0.0.1:8765", "job_abc123"):
    print(state["status"], state.get("progress"))
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import socket
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from sidecar.core.codec import JSONObject, decode_document
from sidecar.core.patch import apply_merge_patch
from sidecar.core.protocol import (
    ENVELOPE_KEYS,
    FINAL_CLOSE_CODES,
    LOG,
    PATCH,
    RESUMED,
    SNAPSHOT,
    UNAUTHORIZED,
    CloseCode,
    is_epoch,
)
from sidecar.core.version import VersionId

logger = logging.getLogger(__name__)

LogCallback = Callable[[list[JSONObject], bool], None]
"""Called with each batch of history entries, and whether it replaces all earlier ones (after a
reconnection the first batch is the whole history again, and replaces them)."""

RetryCallback = Callable[[int | None, str], None]
"""Called before each pause to reconnect, with the close code (None when no WebSocket opened)
and the reason: 4404 while waiting for a job to appear, 1001 when the sidecar shut down..."""

GIVE_UP_AFTER = 60.0
"""``follow_job``'s default: seconds without contact with the sidecar before it gives up."""

CONNECT_TIMEOUT = 10.0
"""The longest one opening handshake may take (less when the give-up time is nearer, 1 s at
least)."""

_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
# What may be typed without a scheme: host[:port][/path], the host a name, an IPv4 or [IPv6].
_SCHEMELESS = re.compile(r"(?://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::\d+)?(?:/[^?#\s]*)?")


class FollowError(Exception):
    """Following a job failed for good: the base of this module's errors."""


class InvalidURL(FollowError, ValueError):
    """The sidecar's URL is not one this client can use."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"invalid sidecar url {url!r}: {reason}")
        self.url = url
        self.reason = reason


class StreamError(FollowError):
    """The server refused the stream for good; ``code`` is the WebSocket close code (403 and
    other HTTP statuses when the opening handshake was refused)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{reason} ({code})")
        self.code = code
        self.reason = reason


class SidecarUnreachable(FollowError):
    """No connection to the sidecar could be made for ``give_up_after`` seconds."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach {url}: {reason}")
        self.url = url
        self.reason = reason


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


def _version_of(message: JSONObject) -> VersionId | None:
    """The ``(epoch, seq)`` a message names, if it names one a ``since`` can carry (a sidecar
    before resumption sends no epoch)."""
    epoch, seq = message.get("epoch"), message.get("seq")
    if not isinstance(epoch, str) or not is_epoch(epoch):
        return None
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 10**18:
        return None
    return epoch, seq


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
    min_backoff: float = 0.1,
    max_backoff: float = 5.0,
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
        min_backoff: first pause before a reconnection, in seconds.
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
    loop = asyncio.get_running_loop()
    contact = loop.time()  # the give-up clock runs from here
    failures = 0
    seen_any = False
    state: JSONObject | None = None  # the job's state, kept across connections to resume from
    version: VersionId | None = None  # the version of ``state``, once a message named one
    logged = False  # on_log has been called
    own = session is None
    http = session or aiohttp.ClientSession()
    try:
        while True:
            code: int | None = None
            streamed = False
            left = None if give_up_after is None else contact + give_up_after - loop.time()
            try:
                handshake = (
                    CONNECT_TIMEOUT if left is None else min(CONNECT_TIMEOUT, max(1.0, left))
                )
                url = ws_url(base, job_id, history=on_log is not None, since=version)
                async with asyncio.timeout(handshake):
                    ws = await http.ws_connect(url, heartbeat=30, headers=headers)
                async with ws:
                    first_state = first_log = True  # this connection's first messages
                    reason = "connection lost"
                    while True:
                        message = await ws.receive()
                        if message.type == aiohttp.WSMsgType.CLOSE:
                            reason = message.extra or "closed"
                            break
                        if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                            break
                        if message.type != aiohttp.WSMsgType.TEXT:
                            continue
                        try:
                            # What a server sends is from outside too: the same boundary.
                            data = decode_document(message.data.encode())
                        except ValueError as e:
                            raise FollowError(f"not a progress-sidecar stream: {e}") from e
                        if not isinstance(data, dict):
                            raise FollowError("not a progress-sidecar stream: not a json object")
                        kind = data.get("type")
                        named = _version_of(data)
                        resumed = data.get(RESUMED) is True
                        for key in ENVELOPE_KEYS:
                            data.pop(key, None)
                        if kind == LOG:
                            if on_log is not None:
                                # A connection's first log has the whole history: after a
                                # reconnection it replaces what the earlier ones had.
                                reset = bool(data.get("reset")) or (first_log and logged)
                                on_log(data.get("entries", []), reset)
                                first_log, logged = False, True
                            continue
                        # A patch applies to the state held, but on a connection that does not
                        # resume from it: there the first patch must say ``resumed``.
                        onto = state if not first_state or (kind == PATCH and resumed) else None
                        state = (
                            data
                            if kind == SNAPSHOT or onto is None
                            else apply_merge_patch(onto, data)
                        )
                        assert isinstance(state, dict)
                        version = named
                        first_state = False
                        failures = 0
                        seen_any = streamed = True
                        yield state
                        if state.get("complete") is True:
                            return
                    code = ws.close_code
            except aiohttp.WSServerHandshakeError as e:
                if (refusal := _refusal(e, base)) is not None:
                    raise refusal from e
                reason = f"http {e.status} {e.message}".strip()
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                reason = _failure(e)
            if code in FINAL_CLOSE_CODES or (
                code == CloseCode.NOT_FOUND and (seen_any or not wait_for_job)
            ):
                raise StreamError(code, reason)
            now = loop.time()
            if streamed or code == CloseCode.NOT_FOUND:
                contact = now  # the sidecar answered: count from here
            failures += 1
            delay = random.uniform(min_backoff, min(max_backoff, min_backoff * 2**failures))
            if give_up_after is not None:
                left = contact + give_up_after - now
                if left <= 0:
                    if code is not None:
                        raise StreamError(code, reason)
                    raise SidecarUnreachable(base, reason)
                delay = min(delay, left)
            logger.info(
                "job %s: stream ended (%s, %s); reconnecting in %.2f s", job_id, code, reason, delay
            )
            if on_retry is not None:
                on_retry(code, reason)
            await asyncio.sleep(delay)
    finally:
        if own:
            await http.close()
