"""What one node's credentials can still write in its own keys costs the others a bounded
share: a huge keyspace delays no stream, a burst of large entries never holds a reader's event
loop, and what a node's states take is bounded (``--max-bytes-per-node``)."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from sidecar.bus import keys, wire
from sidecar.core.state import JobState
from tests.helpers import wait_for
from tests.sidecar.bus.cluster import Cluster, Sidecar, has_jobs, job_field, write_job

pytestmark = pytest.mark.timeout(120)


async def _steps_arrive(cluster: Cluster, gateway: Sidecar, seconds: float) -> float:
    """Write node-a's job step by step for ``seconds``; each must reach the gateway within a
    second. Returns the slowest ``/healthz`` meanwhile."""
    slowest, step = 0.0, 100
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        health = await cluster.get(gateway, "/healthz")
        slowest = max(slowest, time.monotonic() - started)
        assert "node-a" not in health["lost_nodes"], health
        step += 1
        write_job(cluster.root("node-a"), "job", current_step=step)
        await wait_for(
            lambda s=step: job_field(cluster, gateway, "job", "current_step", s),
            timeout=1,
            what=f"step {step}",
        )
    return slowest


async def _cluster(cluster: Cluster, *gateway_args: str) -> tuple[Sidecar, str]:
    write_job(cluster.root("node-a"), "job", current_step=1)
    await cluster.start("node-a")
    gateway = await cluster.start(None, *gateway_args)
    await wait_for(lambda: has_jobs(cluster, gateway, {"job": "node-a"}), what="node-a's job")
    epoch = (cluster.redis.client().get(keys.alive_key("node-a")) or b"").decode()
    return gateway, epoch


async def test_a_huge_keyspace_delays_no_stream(cluster: Cluster) -> None:
    gateway, _ = await _cluster(cluster)
    redis = cluster.redis.client()
    with redis.pipeline(transaction=False) as pipe:  # 300,000 keys under node-x's own prefix
        for i in range(300_000):
            pipe.set(f"{keys.node_prefix('node-x')}junk{i}", b"")
        pipe.execute()
    await _steps_arrive(cluster, gateway, 4)
    log = await cluster.stop(gateway)
    assert " lost" not in log and "Traceback" not in log, log


async def test_a_burst_of_large_entries_never_holds_a_reader(cluster: Cluster) -> None:
    gateway, epoch = await _cluster(cluster)
    redis = cluster.redis.client()
    document = {"status": "running", **{f"m{i}": i for i in range(5000)}}  # some 60 KB
    with redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.alive_key("node-x"), epoch)
        pipe.xadd(keys.changes_key("node-x"), {keys.FIELD: wire.heartbeat_message(epoch)})
        pipe.execute()
    await wait_for(lambda: _knows(cluster, gateway, "node-x"), what="node-x known")

    def burst() -> None:  # in one transaction: taken in a few replies of the stream
        with redis.pipeline(transaction=True) as pipe:
            for seq in range(1, 201):
                changed = {**document, "current_step": seq, **{f"m{i}": seq for i in range(50)}}
                state = JobState(f"big{seq % 5}", changed, time.time(), has_file=True)
                message = wire.state_message(state, epoch, seq)
                pipe.xadd(keys.changes_key("node-x"), {keys.FIELD: message})
            pipe.execute()

    watching = asyncio.create_task(_slowest_health(cluster, gateway, seconds=4))
    await asyncio.to_thread(burst)
    slowest = await watching
    assert slowest < 0.4, slowest
    await _steps_arrive(cluster, gateway, 2)
    await wait_for(
        lambda: job_field(cluster, gateway, "big0", "current_step", 200), timeout=20, what="all"
    )
    assert (await cluster.get(gateway, "/api/jobs/big0"))["m4999"] == 4999
    log = await cluster.stop(gateway)
    assert "node node-a lost" not in log and "Traceback" not in log, log


async def _slowest_health(cluster: Cluster, sidecar: Sidecar, *, seconds: float) -> float:
    slowest = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        await cluster.get(sidecar, "/healthz")
        slowest = max(slowest, time.monotonic() - started)
        await asyncio.sleep(0.05)
    return slowest


async def _knows(cluster: Cluster, sidecar: Sidecar, node: str) -> bool:
    return node in (await cluster.get(sidecar, "/healthz"))["nodes"]


async def test_what_a_nodes_states_take_is_bounded(cluster: Cluster) -> None:
    root = cluster.root("node-a")
    for i in range(10):
        write_job(root, f"job{i}", current_step=i)  # some 200 bytes a state
    await cluster.start("node-a")
    gateway = await cluster.start(None, "--max-bytes-per-node", "1000")
    await wait_for(lambda: _left_out(cluster, gateway), what="states left out")
    taken = sorted(await cluster.jobs(gateway))
    assert 2 <= len(taken) < 10, taken  # some 160 bytes a message: about 6 fit in 1,000
    # A state that grows past the budget is left out: the job keeps its last state.
    write_job(root, taken[0], current_step=1, padding="x" * 2000)
    write_job(root, taken[1], current_step=77)
    await wait_for(lambda: job_field(cluster, gateway, taken[1], "current_step", 77), what="77")
    assert "padding" not in (await cluster.jobs(gateway))[taken[0]]
    assert sorted(await cluster.jobs(gateway)) == taken
    log = await cluster.stop(gateway)
    assert "--max-bytes-per-node 1000" in log and "Traceback" not in log


async def _left_out(cluster: Cluster, sidecar: Sidecar) -> bool:
    async with cluster.session.get(sidecar.url("/metrics")) as response:
        text = await response.text()
    found = re.search(r"^sidecar_bus_jobs_left_out_total (\S+)$", text, re.MULTILINE)
    return found is not None and float(found.group(1)) >= 1
