"""Histories on a budget in a cluster, against a real redis-server: a node keeps publishing its
own jobs' histories; a replica lets go of another node's history once nobody follows it, stops
following it in the stream, and reads it whole again when it is wanted again."""

from __future__ import annotations

import asyncio

from sidecar.bus.redis_bus import RedisBus
from sidecar.core.events import HistoryLines, JobSeen
from sidecar.core.hub import JobHub
from tests.helpers import wait_for
from tests.redis_server import RedisServer


def lines(first: int, count: int) -> tuple[bytes, ...]:
    return tuple(b'{"step":%d}' % step for step in range(first, first + count))


async def test_another_nodes_history_is_let_go_and_read_again_whole(
    redis_server: RedisServer,
) -> None:
    node_now, gateway_now = [1000.0], [1000.0]
    node = JobHub(node="n", clock=lambda: node_now[0], history_grace=10)
    gateway = JobHub(node="", clock=lambda: gateway_now[0], history_grace=10)
    node_bus, gateway_bus = RedisBus(redis_server.url, node), RedisBus(redis_server.url, gateway)
    for hub, bus in ((node, node_bus), (gateway, gateway_bus)):  # as the app wires them
        hub.history_interest.listen(bus.history_wanted, unwanted=bus.history_unwanted)
    tasks = [asyncio.create_task(node_bus.run()), asyncio.create_task(gateway_bus.run())]
    try:
        await asyncio.wait_for(asyncio.gather(node_bus.ready.wait(), gateway_bus.ready.wait()), 10)
        node.apply(JobSeen("n", "j", {"status": "running"}, 1.0))
        await wait_for(lambda: "j" in gateway and "j" in node.history_interest.wanted)
        node.apply(HistoryLines("n", "j", lines(0, 3), reset=True))

        async def gateway_holds(count: int) -> bool:
            log = await gateway.histories.loaded("j", timeout=5)
            return log is not None and len(log.entries) == count

        await wait_for(lambda: gateway_holds(3), what="the history on the gateway")
        assert "j" in gateway_bus.reader.histories._marks  # followed in the stream
        gateway_now[0] += 10
        assert gateway.histories.release_idle() == 1
        assert gateway.histories.budget.size == 0 and "j" not in gateway_bus.reader.histories._marks
        # The node's publisher follows its own jobs' histories: never let go for being unused.
        node_now[0] += 3600
        assert node.histories.release_idle() == 0
        node.apply(HistoryLines("n", "j", lines(3, 2)))
        node.apply(JobSeen("n", "j", {"status": "running", "step": 2}, 2.0))
        # The stream brings the lines, then the state: once the state is here, the lines went by.
        await wait_for(
            lambda: (state := gateway.get("j")) is not None and state.document.get("step") == 2,
            what="the state after the lines",
        )
        assert gateway.histories.budget.size == 0 and "j" not in gateway_bus.reader.histories._marks
        await wait_for(lambda: gateway_holds(5), what="the whole history read again")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
