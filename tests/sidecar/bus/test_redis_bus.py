"""The bus in this process against a real redis-server: what it keeps in Redis stays bounded."""

from __future__ import annotations

import asyncio

from sidecar.bus import wire
from sidecar.bus.redis_bus import RedisBus
from sidecar.core.events import HistoryLines, JobSeen
from sidecar.core.hub import JobHub
from tests.helpers import wait_for
from tests.redis_server import RedisServer


async def test_the_stream_is_trimmed_and_history_capped(redis_server: RedisServer) -> None:
    hub = JobHub(node="n", max_history=50)
    bus = RedisBus(redis_server.url, hub, stream_length=100)
    task = asyncio.create_task(bus.run())
    redis = redis_server.client()
    try:
        await asyncio.wait_for(bus.ready.wait(), 10)
        hub.apply(JobSeen("n", "j", {"status": "running", "step": 0}, 1.0))
        await wait_for(lambda: redis.exists(wire.job_key("n", "j")) == 1)
        for step in range(1, 600):
            hub.apply(JobSeen("n", "j", {"status": "running", "step": step}, 1.0 + step))
            lines = tuple(f'{{"step":{step}}}'.encode() for _ in range(2))
            hub.apply(HistoryLines("n", "j", lines))
            await asyncio.sleep(0.002)
        await wait_for(
            lambda: (
                wire.decode(redis.get(wire.job_key("n", "j")) or b"").state.document["step"]  # type: ignore[union-attr]
                == 599
            ),
            what="the last state in Redis",
        )
        info = redis.xinfo_stream(wire.CHANGES)
        assert info["entries-added"] > 400  # many changes went through...
        assert info["length"] <= 100 + 100  # ...and Redis kept about the last 100
        assert redis.llen(wire.history_key("n", "j")) == 50  # the node's --max-history
        mark = wire.HistoryMark.decode(redis.get(wire.history_mark_key("n", "j")) or b"")
        assert mark.total == 2 * 599
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
