"""Cluster mode: Redis down, restarted empty, unreachable at start or refusing writes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from sidecar.bus import keys
from tests.helpers import wait_for
from tests.redis_server import RedisServer
from tests.sidecar.bus.cluster import NODE_TIMEOUT, Cluster, Sidecar, has_jobs, write_job

pytestmark = pytest.mark.timeout(90)


async def test_bus_down_local_serving_goes_on_and_no_final_state_is_lost(
    cluster: Cluster,
) -> None:
    root = cluster.root("node-a")
    write_job(root, "job-a", current_step=1)
    a = await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: has_jobs(cluster, gateway, {"job-a": "node-a"}), what="job-a")
    local = await cluster.follow(a, "job-a")
    relayed = await cluster.follow(gateway, "job-a")
    for client in (local, relayed):
        await client.until(lambda s: s.get("current_step") == 1)

    cluster.redis.kill()
    write_job(root, "job-a", current_step=2)
    await local.until(lambda s: s.get("current_step") == 2)  # served as without Redis
    for sidecar in (a, gateway):
        await wait_for(
            lambda s=sidecar: _bus(cluster, s, "down"), what=f"bus down on {sidecar.name}"
        )
    assert (await cluster.jobs(gateway))["job-a"]["current_step"] == 1  # the last state it had
    write_job(root, "job-a", status="completed", final_loss=0.5)
    assert await local.closed() == 1000

    cluster.redis.start()  # a new, empty Redis
    assert await relayed.closed(timeout=20) == 1000
    assert relayed.state is not None and relayed.state["status"] == "completed"
    assert relayed.state["final_loss"] == 0.5
    for sidecar in (a, gateway):
        await wait_for(lambda s=sidecar: _bus(cluster, s, "up"), what=f"bus up on {sidecar.name}")
    log = await cluster.stop(a)
    assert log.count("bus down") == 1, log
    assert "bus up again" in log


async def test_redis_restarted_empty_is_filled_again_and_nothing_goes_back(
    cluster: Cluster,
) -> None:
    write_job(cluster.root("node-a"), "job-a", current_step=3)
    write_job(cluster.root("node-b"), "job-b", current_step=7)
    write_job(cluster.root("node-b"), "done-b", status="completed", final_loss=0.2)
    a = await cluster.start("node-a")
    b = await cluster.start("node-b")
    gateway = await cluster.start(None)
    expected = {"job-a": "node-a", "job-b": "node-b", "done-b": "node-b"}
    await wait_for(lambda: has_jobs(cluster, gateway, expected), what="every job")
    client = await cluster.follow(gateway, "job-a")  # asserts seq never goes back in an epoch
    other = await cluster.follow(gateway, "job-b")
    await client.until(lambda s: s.get("current_step") == 3)
    await other.until(lambda s: s.get("current_step") == 7)
    for sidecar in (a, b, gateway):  # a node unknown yet can never be heard from to be missed
        await wait_for(
            lambda s=sidecar: _knows_the_others(cluster, s), what=f"{sidecar.name} knows the nodes"
        )

    cluster.redis.kill()
    # Redis stays away until every sidecar has heard from no other node for longer than the
    # node timeout and a tick of its watch (their retries back off meanwhile): none may take a
    # silence it cannot hear through for a node lost.
    outage = float(NODE_TIMEOUT) + 0.5
    for sidecar in (a, b, gateway):
        await wait_for(
            lambda s=sidecar: _deaf_for(cluster, s, outage), what=f"{sidecar.name} deaf a while"
        )
        health = await cluster.get(sidecar, "/healthz")
        assert health["bus"] == "down" and health["lost_nodes"] == [], health
    cluster.redis.start()
    redis = cluster.redis.client()
    seconds, microseconds = redis.time()
    back = seconds * 1000 + microseconds // 1000  # Redis' clock, as its stream entries' ids
    # Every node announces itself to the new Redis within the node timeout (less a tick of the
    # others' watch) of its return: no sidecar, reading again, finds a node silent that long.
    for node in ("node-a", "node-b"):
        await wait_for(lambda n=node: _announced(redis, n) is not None, what=f"{node} announced")
        assert _announced(redis, node) - back < (float(NODE_TIMEOUT) - 0.25) * 1000, node
    # Every node republishes: a gateway started now sees every job again.
    late = await cluster.start(None)
    await wait_for(lambda: has_jobs(cluster, late, expected), timeout=15, what="republished")
    assert {n: set(redis.hkeys(keys.jobs_key(n))) for n in ("node-a", "node-b")} == {
        "node-a": {b"job-a"},
        "node-b": {b"job-b", b"done-b"},
    }
    write_job(cluster.root("node-a"), "job-a", current_step=4)
    write_job(cluster.root("node-b"), "job-b", current_step=8)
    await client.until(lambda s: s.get("current_step") == 4)
    await other.until(lambda s: s.get("current_step") == 8)  # never closed as "job removed"
    assert [m["type"] for m in client.messages] == ["snapshot", "patch"]
    assert [m["type"] for m in other.messages] == ["snapshot", "patch"]
    for sidecar in list(cluster.sidecars):  # a Redis outage is nobody's node lost
        log = await cluster.stop(sidecar)
        assert " lost" not in log, log


async def _deaf_for(cluster: Cluster, sidecar: Sidecar, seconds: float) -> bool:
    """Whether a sidecar has heard from no other node for more than ``seconds``."""
    health = await cluster.get(sidecar, "/healthz")
    ages = [age for node, age in health["nodes"].items() if node != sidecar.name]
    return bool(ages) and min(ages) > seconds


async def _knows_the_others(cluster: Cluster, sidecar: Sidecar) -> bool:
    """Whether a sidecar has heard from every node but itself."""
    nodes = set((await cluster.get(sidecar, "/healthz"))["nodes"])
    return nodes >= {"node-a", "node-b"} - {sidecar.name}


def _announced(redis: Any, node: str) -> Any:
    """When (Redis' clock, ms) a node first announced itself in its stream (None: not yet)."""
    for entry_id, fields in redis.xrange(keys.changes_key(node)):
        if json.loads(fields[keys.FIELD])["kind"] == "heartbeat":
            return int(entry_id.split(b"-")[0])
    return None


async def test_an_unreachable_redis_at_start_is_not_fatal(
    cluster: Cluster, redis_server: RedisServer
) -> None:
    redis_server.kill()
    write_job(cluster.root("node-a"), "job-a", current_step=1)
    a = await cluster.start("node-a")
    assert (await cluster.jobs(a))["job-a"]["current_step"] == 1
    assert (await cluster.get(a, "/healthz"))["bus"] == "down"
    redis_server.start()
    await wait_for(lambda: _bus(cluster, a, "up"), timeout=15, what="bus up")
    gateway = await cluster.start(None)
    await wait_for(lambda: has_jobs(cluster, gateway, {"job-a": "node-a"}), what="published")
    log = await cluster.stop(a)
    assert "bus unreachable at start" in log and "Traceback" not in log


async def test_redis_refusing_writes_is_one_outage_not_a_flood(cluster: Cluster) -> None:
    root = cluster.root("node-a")
    write_job(root, "job", current_step=1)
    a = await cluster.start("node-a")
    await wait_for(lambda: _bus(cluster, a, "up"), what="bus up")
    redis = cluster.redis.client()
    redis.config_set("maxmemory-policy", "noeviction")
    redis.config_set("maxmemory", "1")  # every write refused (OOM), reads still answered
    for step in range(2, 12):  # writes the node keeps trying to publish, and is refused
        write_job(root, "job", current_step=step)
        await asyncio.sleep(0.2)
    await wait_for(lambda: _bus(cluster, a, "down"), what="bus down")
    redis.config_set("maxmemory", "0")
    await wait_for(lambda: _bus(cluster, a, "up"), timeout=15, what="bus up again")
    log = await cluster.stop(a)
    assert log.count("bus down") == 1 and log.count("bus up again") == 1, log


async def _bus(cluster: Cluster, sidecar: Sidecar, status: str) -> bool:
    return bool((await cluster.get(sidecar, "/healthz"))["bus"] == status)
