"""``GET /ws/training/{job_id}``: a snapshot, then merge patches, until the job completes."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from sidecar.core.contract import is_valid_job_id
from sidecar.core.history_store import LOAD_TIMEOUT
from sidecar.core.hub import JobHub, UnknownJob
from sidecar.core.protocol import (
    INVALID_FORMAT,
    INVALID_HISTORY,
    INVALID_JOB_ID,
    INVALID_SINCE,
    JOB_COMPLETE,
    JOB_REMOVED,
    LOG,
    PATCH,
    SNAPSHOT,
    UNKNOWN_JOB,
    Close,
    parse_since,
)
from sidecar.core.subscription import Subscription
from sidecar.core.version import DirectSend, Version
from sidecar.server.access import client_address
from sidecar.server.close_pacer import ClosePacer
from sidecar.server.keys import CLOSES, HUB, METRICS
from sidecar.server.metrics import Metrics
from sidecar.server.sockets import ClientSocket, admit, client_left, open_socket, serving


async def training_socket(request: web.Request) -> web.StreamResponse:
    """Stream one job's state to one client."""
    hub = request.app[HUB]
    ws = await open_socket(request)
    if ws is None:
        return client_left()
    job_id = request.match_info["job_id"]
    fmt = request.query.get("format", "patch")
    history = request.query.get("history", "0")
    since = request.query.get("since")
    address = client_address(request)
    subscription = await admit(
        ws, lambda: _subscribe(hub, job_id, fmt, history, since, address=address)
    )
    if subscription is None:
        return ws
    async with serving(
        request,
        ws,
        peer=f"job {job_id}",
        on_end=subscription.wake,
        leave=lambda: hub.unsubscribe(subscription),
    ) as client:
        loaded = lambda: hub.histories.loaded(job_id, timeout=LOAD_TIMEOUT)  # noqa: E731
        await _send_updates(
            client, subscription, request.app[METRICS], request.app[CLOSES], loaded=loaded
        )
    return ws


def _subscribe(
    hub: JobHub, job_id: str, fmt: str, history: str, since: str | None, *, address: str | None
) -> Subscription | Close:
    if not is_valid_job_id(job_id):
        return INVALID_JOB_ID
    if fmt not in ("patch", "full"):
        return INVALID_FORMAT
    if history not in ("0", "1"):
        return INVALID_HISTORY
    resume = parse_since(since) if since is not None else None
    if since is not None and resume is None:
        return INVALID_SINCE
    try:
        return hub.subscribe(
            job_id,
            full=fmt == "full",
            history=history == "1",
            address=address,
            since=resume,
        )
    except UnknownJob:
        return UNKNOWN_JOB


async def _send_updates(
    client: ClientSocket,
    subscription: Subscription,
    metrics: Metrics,
    closes: ClosePacer,
    *,
    loaded: Callable[[], Awaitable[object]],
) -> None:
    """Send each new version (the latest only, when the client lags) until the end.

    Args:
        loaded: waits until the job's history is read as far as its source holds it (a
            gateway reads another node's from Redis): the history that goes before a final
            state must be whole, since the stream ends with that state.
    """
    history = _HistoryCursor() if subscription.history else None
    if not subscription.full and history is None:
        subscription.direct = _direct_sender(client, metrics)
        subscription.close_turn = closes.later
    while True:
        await subscription.wait()
        if client.gone:
            return
        if subscription.sent is not None and subscription.sent.complete:
            # The final state went out on the fast path and the close waited its turn: what
            # came meanwhile (the job's removal, a rewrite) does not change how this one ends.
            await client.close(JOB_COMPLETE)
            return
        version = subscription.version
        if version is None:
            await client.close(JOB_REMOVED)
            return
        subscription.busy = True
        try:
            if history is not None and version.complete:
                await loaded()
            if not await _catch_up(client, subscription, version, history, metrics):
                return
        finally:
            subscription.busy = False
        if version.complete:
            await client.close(JOB_COMPLETE)
            return


async def _catch_up(
    client: ClientSocket,
    subscription: Subscription,
    version: Version,
    history: _HistoryCursor | None,
    metrics: Metrics,
) -> bool:
    """Bring one client to ``version``: the snapshot first, then history, then a patch."""
    sent = subscription.sent
    if sent is None:
        # The first message: a patch from the state the client resumes from, or a snapshot.
        base, subscription.resume_base = subscription.resume_base, None
        kind = SNAPSHOT if base is None else PATCH
        frame = version.snapshot_frame() if base is None else version.resume_frame(base)
        if not await client.send(frame):
            return False
        metrics.send.messages[kind] += 1
        sent = subscription.sent = version
    if history is not None and (log := history.frame(subscription, at=sent)) is not None:
        if not await client.send(log):
            return False
        metrics.send.messages[LOG] += 1
    if version is not sent:
        kind = SNAPSHOT if subscription.full else PATCH
        frame = version.snapshot_frame() if subscription.full else version.patch_frame(sent)
        metrics.send.coalesced += max(0, version.index - sent.index - 1)
        if not await client.send(frame):
            return False
        metrics.send.messages[kind] += 1
        metrics.event_to_send.observe(time.monotonic() - version.created)
        subscription.sent = version
    return True


def _direct_sender(client: ClientSocket, metrics: Metrics) -> DirectSend:
    """A sender that writes a patch frame straight to the socket when nothing is queued there.

    It never waits: a connection with unsent bytes (a slow reader) is left to its own sender,
    which has the timeout.
    """

    def send(version: Version, previous: Version) -> bool:
        if not client.writable:
            return False
        client.write(version.patch_frame(previous))
        metrics.send.messages[PATCH] += 1
        metrics.event_to_send.observe(time.monotonic() - version.created)
        return True

    return send


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
