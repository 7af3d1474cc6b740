"""A node's announcer while Redis is away: it tries again at least every quarter of the node
timeout, so that once Redis is back the other nodes hear from it before they take it for lost."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

from scripts.support.ports import free_port
from sidecar.bus.link import Link, connect
from sidecar.bus.publisher import Publisher
from sidecar.core.hub import JobHub
from tests.helpers import wait_for

NODE_TIMEOUT = 0.8


async def test_the_announcer_retries_within_a_quarter_of_the_node_timeout() -> None:
    redis = connect(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    link = Link(on_reading=lambda: None, clients=(redis,))
    publisher = Publisher(redis, link, JobHub(node="n"), node_timeout=NODE_TIMEOUT)
    tries: list[float] = []
    failed = link.failed

    async def counted(part: str, error: BaseException) -> None:
        tries.append(time.monotonic())
        await failed(part, error)

    link.failed = counted  # type: ignore[method-assign]
    task = asyncio.create_task(publisher.announce())
    try:
        # Unbounded, the backoff's fourth pause alone would be 0.4 to 0.8 s: eight tries hold it.
        await wait_for(lambda: len(tries) >= 8, timeout=10, what="eight tries")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()
    gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
    assert len(tries) >= 8, tries
    # A quarter of the node timeout, and room for a loaded machine's late wake-ups.
    assert max(gaps) < NODE_TIMEOUT / 4 + 0.15, gaps
