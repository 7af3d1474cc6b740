"""The bus in this process against a real redis-server: what it keeps in Redis stays bounded."""

from __future__ import annotations

import asyncio
from typing import Any

from sidecar.bus import decoder, keys
from sidecar.bus.redis_bus import RedisBus
from sidecar.core.events import HistoryLines, JobSeen
from sidecar.core.hub import JobHub
from tests.helpers import wait_for
from tests.redis_server import RedisServer

LIMITS = decoder.Limits(max_document_bytes=1 << 20)


async def test_the_stream_is_trimmed_and_history_capped(redis_server: RedisServer) -> None:
    hub = JobHub(node="n", max_history=50)
    bus = RedisBus(redis_server.url, hub, stream_length=100)
    task = asyncio.create_task(bus.run())
    redis = redis_server.client()
    try:
        await asyncio.wait_for(bus.ready.wait(), 10)
        hub.apply(JobSeen("n", "j", {"status": "running", "step": 0}, 1.0))
        await wait_for(lambda: redis.hexists(keys.jobs_key("n"), "j"))
        for step in range(1, 600):
            hub.apply(JobSeen("n", "j", {"status": "running", "step": step}, 1.0 + step))
            lines = tuple(f'{{"step":{step}}}'.encode() for _ in range(2))
            hub.apply(HistoryLines("n", "j", lines))
            await asyncio.sleep(0.002)
        await wait_for(lambda: _published_step(redis) == 599, what="the last state in Redis")
        info = redis.xinfo_stream(keys.changes_key("n"))
        assert info["entries-added"] > 400  # many changes went through...
        assert info["length"] <= 100 + 100  # ...and Redis kept about the last 100
        assert redis.hlen(keys.jobs_key("n")) == 1  # the latest state only
        assert redis.llen(keys.history_key("n", "j")) == 50  # the node's --max-history
        await wait_for(lambda: _history_total(redis) == 2 * 599, what="the last history mark")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _published_step(redis: Any) -> Any:
    raw = redis.hget(keys.jobs_key("n"), "j")
    if raw is None:
        return None
    return decoder.decode_state(b"j", raw, "n", LIMITS).state.document["step"]


def _history_total(redis: Any) -> int | None:
    raw = redis.get(keys.history_mark_key("n", "j"))
    return None if raw is None else decoder.decode_mark(raw).total
