"""A Python client: follow one job's merged state, reconnecting as needed, until it completes.

async for state in follow_job("http://127.0.0.1:8765", "job_abc123"):
    print(state["status"], state.get("progress"))
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Callable

import aiohttp

from sidecar.codec import JSONObject
from sidecar.patch import apply_merge_patch

logger = logging.getLogger(__name__)

LogCallback = Callable[[list[JSONObject], bool], None]
"""Called with each batch of history entries, and whether it replaces all earlier ones."""


class StreamError(Exception):
    """The server refused the stream for good; ``code`` is the WebSocket close code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{reason} ({code})")
        self.code = code
        self.reason = reason


def ws_url(base_url: str, job_id: str, *, history: bool = False) -> str:
    """``ws://host:port/ws/training/<job_id>`` for a sidecar at ``http://host:port``."""
    base = base_url.rstrip("/")
    if base.startswith("http"):
        base = "ws" + base[len("http") :]
    return f"{base}/ws/training/{job_id}" + ("?history=1" if history else "")


async def follow_job(
    base_url: str,
    job_id: str,
    *,
    on_log: LogCallback | None = None,
    wait_for_job: bool = True,
    token: str | None = None,
    min_backoff: float = 0.1,
    max_backoff: float = 5.0,
    session: aiohttp.ClientSession | None = None,
) -> AsyncIterator[JSONObject]:
    """Yield the job's whole state after each message, until a state with ``complete: true``.

    When the connection drops (or the sidecar restarts), it reconnects with exponential
    backoff and jitter and starts again from a fresh snapshot.

    Args:
        base_url: the sidecar, as ``http://host:port``.
        job_id: the job to follow.
        on_log: receives history entries; asks for ``history=1`` when given.
        wait_for_job: keep trying while the job does not exist yet (4404 before any state).
        token: the sidecar's bearer token, if it has one.
        min_backoff: first pause before a reconnection, in seconds.
        max_backoff: longest pause before a reconnection, in seconds.
        session: an aiohttp session to use (one is made otherwise).

    Raises:
        StreamError: the job id is invalid, the token is refused, the job was removed, or it
            does not exist and ``wait_for_job`` is false.
    """
    own = session is None
    http = session or aiohttp.ClientSession()
    url = ws_url(base_url, job_id, history=on_log is not None)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    failures = 0
    seen_any = False
    try:
        while True:
            try:
                async with http.ws_connect(url, heartbeat=30, headers=headers) as ws:
                    state: JSONObject | None = None
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
                        data = json.loads(message.data)
                        kind = data.pop("type", None)
                        data.pop("seq", None)
                        if kind == "log":
                            if on_log is not None:
                                on_log(data.get("entries", []), bool(data.get("reset")))
                            continue
                        state = (
                            data
                            if kind == "snapshot" or state is None
                            else apply_merge_patch(state, data)
                        )
                        assert isinstance(state, dict)
                        failures = 0
                        seen_any = True
                        yield state
                        if state.get("complete") is True:
                            return
                    code = ws.close_code
            except aiohttp.WSServerHandshakeError as e:
                if e.status == 403:
                    raise StreamError(403, "forbidden: origin or host not allowed") from e
                code, reason = None, str(e)
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                code, reason = None, str(e) or type(e).__name__
            if code in (4400, 4401) or (code == 4404 and (seen_any or not wait_for_job)):
                raise StreamError(code, reason)
            failures += 1
            delay = random.uniform(min_backoff, min(max_backoff, min_backoff * 2**failures))
            logger.info(
                "job %s: stream ended (%s, %s); reconnecting in %.2f s", job_id, code, reason, delay
            )
            await asyncio.sleep(delay)
    finally:
        if own:
            await http.close()
