"""The connection to Redis and its state: clients, backoff, up or down (said once each way)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from sidecar.bus.interface import BusConfigError

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT: Final = 2.0
SOCKET_TIMEOUT: Final = 5.0
MIN_BACKOFF: Final = 0.1
MAX_BACKOFF: Final = 5.0

FAILURES = (RedisError, OSError)
"""What a Redis command raises when Redis is down, restarting or unreachable."""


def connect(url: str, *, retries: int = 0) -> aioredis.Redis:
    """A client for ``url``. The bus retries when Redis is down; ``retries`` is for a
    connection found broken when a command is sent (Redis restarted while it was idle)."""
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        retry=Retry(NoBackoff(), retries),
    )
    return client


async def refused(url: str) -> None:
    """Try Redis once, at start-up: unreachable is no error (the bus retries and says so).

    Raises:
        BusConfigError: Redis answered and refused (credentials, database).
    """
    client = connect(url)
    try:
        await asyncio.wait_for(client.ping(), CONNECT_TIMEOUT + 1)
    except (AuthenticationError, ResponseError) as e:
        raise BusConfigError(f"--redis: Redis refused the connection: {e}") from None
    except (*FAILURES, TimeoutError):
        pass
    finally:
        with contextlib.suppress(*FAILURES):
            await client.aclose()


class Backoff:
    """Pauses between retries: from ``MIN_BACKOFF`` doubling to ``MAX_BACKOFF``, jittered."""

    def __init__(self) -> None:
        self.delay = MIN_BACKOFF

    def next(self) -> float:
        delay, self.delay = self.delay, min(MAX_BACKOFF, self.delay * 2)
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.delay = MIN_BACKOFF


class Link:
    """Whether Redis answers, as the bus's tasks find out; the log hears of each change once.

    Args:
        on_up: called when Redis answers again after it did not.
    """

    def __init__(self, on_up: Callable[[], None]) -> None:
        self.up = False
        self.ready = asyncio.Event()
        """Set once every job of the cluster has been read, or Redis found unreachable."""
        self._on_up = on_up
        self._down_said = False

    def answered(self) -> None:
        if not self.up:
            self.up = True
            self._on_up()
            if self._down_said:
                logger.info("bus up again: Redis answers")
                self._down_said = False

    def failed(self, error: BaseException) -> None:
        was_up, self.up = self.up, False
        if not self._down_said:
            what = "bus down" if was_up or self.ready.is_set() else "bus unreachable at start"
            reason = str(error) or type(error).__name__
            logger.warning("%s: %s; serving what is known, retrying with backoff", what, reason)
            self._down_said = True
        self.ready.set()
