"""What anyone who can write to Redis (the shared password, or a node's own credentials for its
own keys) can still do to the others is bounded: a forged ``seq`` pins nothing, invented nodes
and jobs past the limits are left out and counted at a bounded cost, and refused writes show in
``/healthz``."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from sidecar.bus import keys, wire
from sidecar.core.state import JobState
from tests.helpers import wait_for
from tests.sidecar.bus.cluster import Cluster, Sidecar, has_jobs, job_field, write_job

pytestmark = pytest.mark.timeout(90)


async def _metric(cluster: Cluster, sidecar: Sidecar, name: str) -> float:
    async with cluster.session.get(sidecar.url("/metrics")) as response:
        text = await response.text()
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, name
    return float(found.group(1))


async def test_a_forged_seq_pins_nothing(cluster: Cluster) -> None:
    root = cluster.root("node-a")
    write_job(root, "job", current_step=1)
    await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: job_field(cluster, gateway, "job", "current_step", 1), what="step 1")
    redis = cluster.redis.client()
    epoch = (redis.get(keys.alive_key("node-a")) or b"").decode()
    document = {"status": "running", "current_step": 999}
    forged = wire.state_message(JobState("job", document, time.time(), has_file=True), epoch, 2**62)
    redis.xadd(keys.changes_key("node-a"), {keys.FIELD: forged})
    # Written in node-a's own stream (with its credentials, or the shared password), it shows...
    await wait_for(lambda: job_field(cluster, gateway, "job", "current_step", 999), what="999")
    # ...until node-a's next real entry, whose seq is far lower, replaces it.
    write_job(root, "job", current_step=2)
    await wait_for(lambda: job_field(cluster, gateway, "job", "current_step", 2), what="step 2")
    write_job(root, "job", current_step=3)
    await wait_for(lambda: job_field(cluster, gateway, "job", "current_step", 3), what="step 3")
    late = await cluster.start(None)
    assert (await cluster.jobs(late))["job"]["current_step"] == 3


async def test_invented_nodes_are_left_out_past_the_limit_at_a_bounded_cost(
    cluster: Cluster,
) -> None:
    root = cluster.root("node-a")
    write_job(root, "job", current_step=1)
    await cluster.start("node-a")
    gateway = await cluster.start(None, "--max-nodes", "20")
    await wait_for(lambda: has_jobs(cluster, gateway, {"job": "node-a"}), what="node-a's job")
    redis = cluster.redis.client()
    epoch = (redis.get(keys.alive_key("node-a")) or b"").decode()
    invented = 20_000
    with redis.pipeline(transaction=False) as pipe:
        for i in range(invented):  # announced for good (no expiry), one heartbeat each
            pipe.set(keys.alive_key(f"invented-{i}"), epoch)
            pipe.xadd(
                keys.changes_key(f"invented-{i}"), {keys.FIELD: wire.heartbeat_message(epoch)}
            )
        pipe.execute()
    slowest = left_out = 0.0
    deadline = time.monotonic() + 6
    step = 1
    while time.monotonic() < deadline:  # the gateway keeps answering, and keeps up
        started = time.monotonic()
        health = await cluster.get(gateway, "/healthz")
        slowest = max(slowest, time.monotonic() - started)
        assert len(health["nodes"]) <= 20, len(health["nodes"])
        left_out = max(left_out, await _metric(cluster, gateway, "sidecar_bus_nodes_left_out"))
        step += 1
        write_job(root, "job", current_step=step)
        await wait_for(
            lambda s=step: job_field(cluster, gateway, "job", "current_step", s),
            timeout=2,
            what=f"step {step} through the flood",
        )
    assert slowest < 1.0, slowest
    assert left_out > 0  # the table was full: the rest counted, not read
    # Invented nodes say nothing more: each is lost, then forgotten with its memory; only
    # node-a stays known.
    await wait_for(
        lambda: _nodes(cluster, gateway, {"node-a"}), timeout=15, what="invented ones forgotten"
    )
    log = await cluster.stop(gateway)
    assert "Traceback" not in log
    assert len(re.findall("invented-", log)) < 200, "a log line per invented node"


async def _nodes(cluster: Cluster, sidecar: Sidecar, expected: set[str]) -> bool:
    health: dict[str, Any] = await cluster.get(sidecar, "/healthz")
    return set(health["nodes"]) == expected


async def test_jobs_past_the_limit_of_a_node_are_left_out_and_counted(cluster: Cluster) -> None:
    root = cluster.root("node-a")
    for i in range(12):
        write_job(root, f"job{i:02}", current_step=i)
    await cluster.start("node-a")
    early = await cluster.start(None, "--max-jobs-per-node", "5")
    await wait_for(lambda: _count(cluster, early, 5), what="5 jobs on the early gateway")
    # One that starts later reads them from node-a's jobs hash, bounded the same way.
    late = await cluster.start(None, "--max-jobs-per-node", "5")
    await wait_for(lambda: _count(cluster, late, 5), what="5 jobs on the late gateway")
    for sidecar in (early, late):
        assert await _metric(cluster, sidecar, "sidecar_bus_jobs_left_out_total") >= 7
    write_job(root, "job99", current_step=1)  # one more: left out too, the 5 shown still update
    shown = sorted(await cluster.jobs(late))[0]
    write_job(root, shown, current_step=100)
    await wait_for(lambda: job_field(cluster, late, shown, "current_step", 100), what="update")
    assert await _count(cluster, late, 5)
    log = await cluster.stop(late)
    assert "--max-jobs-per-node" in log and "Traceback" not in log


async def _count(cluster: Cluster, sidecar: Sidecar, expected: int) -> bool:
    return len(await cluster.jobs(sidecar)) == expected


async def test_refused_writes_show_in_healthz_on_a_gateway_too(cluster: Cluster) -> None:
    root = cluster.root("node-a")
    write_job(root, "job", current_step=1)
    node = await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: has_jobs(cluster, gateway, {"job": "node-a"}), what="node-a's job")
    redis = cluster.redis.client()
    redis.config_set("maxmemory-policy", "noeviction")
    redis.config_set("maxmemory", "1")  # every write refused (OOM), reads still answered
    try:
        await wait_for(lambda: _bus_down(cluster, gateway, "refuses writes"), what="gateway down")
        await wait_for(lambda: _bus_down(cluster, node, "maxmemory"), what="node down")
    finally:
        redis.config_set("maxmemory", "0")
    for sidecar in (gateway, node):
        await wait_for(lambda s=sidecar: _bus_up(cluster, s), timeout=15, what="bus up again")
    write_job(root, "job", current_step=2)
    await wait_for(lambda: job_field(cluster, gateway, "job", "current_step", 2), what="step 2")


async def _bus_down(cluster: Cluster, sidecar: Sidecar, reason: str) -> bool:
    health = await cluster.get(sidecar, "/healthz")
    return bool(health["bus"] == "down" and reason in health.get("bus_reason", ""))


async def _bus_up(cluster: Cluster, sidecar: Sidecar) -> bool:
    health = await cluster.get(sidecar, "/healthz")
    return bool(health["bus"] == "up" and "bus_reason" not in health)
