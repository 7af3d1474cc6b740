"""The connection to Redis and its state: clients, up or down (said once each way)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT: Final = 2.0
SOCKET_TIMEOUT: Final = 5.0

FAILURES = (RedisError, OSError)
"""What a Redis command raises when Redis is down, restarting or unreachable."""


def connect(url: str) -> aioredis.Redis:
    """A client for ``url``. It never sends a command again by itself (``NoBackoff``, no
    retry, on purpose): the bus's tasks retry, with ``sidecar.core.backoff``, after dropping
    every connection (a transaction sent twice would append history twice)."""
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    return client


def stop_if_cancelled() -> None:
    """Raise ``CancelledError`` when this task is being cancelled. redis-py may turn a
    cancellation that lands inside a command into a connection error: a retry loop that caught
    it would go on, and the sidecar would never stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


READING: Final = "reading"
WRITING: Final = "writing"


class Link:
    """Whether Redis answers, as the bus's tasks find out: up while every part that uses it
    (``READING``, ``WRITING``) last succeeded; the log hears of each change once.

    Args:
        on_reading: called when the stream is read again after it was not.
        clients: dropped (their connections) whenever a part fails, so that no part finds a
            stale connection when Redis is back.
    """

    def __init__(self, on_reading: Callable[[], None], clients: Sequence[aioredis.Redis]) -> None:
        self.ready = asyncio.Event()
        """Set once every job of the cluster has been read, or Redis found unreachable."""
        self._on_reading = on_reading
        self._clients = clients
        self._failing: set[str] = {READING}  # until the first read
        self._down_said = False
        self._down_kind = ""
        self.reason: str | None = "not read yet"
        """Why it is down (the part, and Redis' error); None while up."""

    @property
    def up(self) -> bool:
        return not self._failing

    @property
    def reading(self) -> bool:
        """Whether the stream is read now (the other nodes can be heard)."""
        return READING not in self._failing

    def answered(self, part: str) -> None:
        if part not in self._failing:
            return
        self._failing.discard(part)
        if part == READING:
            self._on_reading()
        if not self._failing:
            self.reason = None
            if self._down_said:
                logger.info("bus up again: Redis answers")
                self._down_said = False

    async def failed(self, part: str, error: BaseException) -> None:
        stop_if_cancelled()
        self._failing.add(part)
        reason = str(error).rstrip(".") or type(error).__name__
        self.reason = f"{part}: {reason}"
        kind = type(error).__name__
        if self._down_said and kind != self._down_kind:
            # Another cause (Redis back, but refusing these credentials): said once more.
            logger.warning("bus still down (%s), now: %s", part, reason)
            self._down_kind = kind
        if not self._down_said:
            self._down_kind = kind
            what = "bus down" if self.ready.is_set() else "bus unreachable at start"
            logger.warning(
                "%s (%s): %s; serving what is known, retrying with backoff", what, part, reason
            )
            self._down_said = True
        self.ready.set()
        for client in self._clients:
            with contextlib.suppress(*FAILURES):
                await client.connection_pool.disconnect()
