"""Cluster mode: nodes lost, stopped, restarted, and two nodes with one job id."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

import pytest

from sidecar.bus import keys
from tests.helpers import wait_for
from tests.sidecar.bus.cluster import Cluster, Sidecar, absent, has_jobs, write_job

pytestmark = pytest.mark.timeout(90)


async def _stall_reason(cluster: Cluster, sidecar: Sidecar, job_id: str, reason: str) -> bool:
    return (await cluster.jobs(sidecar))[job_id].get("stall_reason") == reason


async def test_a_lost_node_shows_its_running_jobs_stalled_until_it_returns(
    cluster: Cluster,
) -> None:
    root = cluster.root("node-b")
    write_job(root, "running-b", current_step=5)
    write_job(root, "done-b", status="completed", final_loss=0.1)
    write_job(cluster.root("node-a"), "job-a", current_step=1)
    b = await cluster.start("node-b")
    a = await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: has_jobs(cluster, gateway, {"running-b": "node-b", "job-a": "node-a"}))
    client = await cluster.follow(gateway, "running-b")
    # Clients served by their own sender (history, whole states) see it as the others do.
    others = [await cluster.follow(gateway, "running-b", q) for q in ("history=1", "format=full")]
    for each in (client, *others):
        await each.until(lambda s: s.get("current_step") == 5)

    await cluster.kill(b)
    for each in (client, *others):
        state = await each.until(lambda s: s.get("stalled") is True, timeout=10)
        assert state["stall_reason"] == "node lost" and state["current_step"] == 5
    for sidecar in (gateway, a):
        # Each sidecar finds the silence on its own clock (a quarter-second tick): node a may
        # be a tick behind the gateway its clients are on.
        await wait_for(
            lambda s=sidecar: _stall_reason(cluster, s, "running-b", "node lost"),
            what=f"running-b lost on {sidecar.name}",
        )
        jobs = await cluster.jobs(sidecar)
        assert jobs["running-b"]["stall_reason"] == "node lost"
        assert jobs["done-b"]["status"] == "completed" and jobs["done-b"]["stalled"] is False
        assert jobs["job-a"]["stalled"] is False
    health = await cluster.get(gateway, "/healthz")
    assert health["lost_nodes"] == ["node-b"] and health["nodes"]["node-b"] >= 1.5
    async with cluster.session.get(gateway.url("/metrics")) as response:
        metrics = await response.text()
    assert "sidecar_nodes_lost 1.0" in metrics and "sidecar_bus_up 1.0" in metrics

    await cluster.start("node-b")
    state = await client.until(lambda s: s.get("stalled") is False, timeout=10)
    assert "stall_reason" not in state and state["current_step"] == 5
    assert (await cluster.get(gateway, "/healthz"))["lost_nodes"] == []


async def test_the_same_job_id_on_two_nodes_warns_once(cluster: Cluster) -> None:
    """Each node serves its own job of the id; every other sidecar serves the first node's it
    saw, whatever the second writes; each says so once."""
    write_job(cluster.root("node-a"), "twin", current_step=1)
    a = await cluster.start("node-a")
    gateway = await cluster.start(None)
    b = await cluster.start("node-b")
    first = {"twin": "node-a"}
    for sidecar in (gateway, b):
        await wait_for(lambda s=sidecar: has_jobs(cluster, s, first), what=sidecar.name)
    for step in range(2, 5):  # node b's twin comes: b serves its own from its first write
        write_job(cluster.root("node-b"), "twin", current_step=100 + step)
        write_job(cluster.root("node-a"), "twin", current_step=step)
        await asyncio.sleep(0.05)
    redis = cluster.redis.client()
    for node, step in (("node-a", 4), ("node-b", 104)):
        await wait_for(
            lambda n=node, s=step: _published_step(redis, n, "twin") == s,
            what=f"{node}'s own twin, step {step}, published",
        )
    write_job(cluster.root("node-b"), "twin", current_step=105)  # the last twin in the stream
    await wait_for(lambda: _published_step(redis, "node-b", "twin") == 105, what="b's 105")
    # A job of each node published after its last twin: whoever has read it has read those.
    write_job(cluster.root("node-a"), "after-a", current_step=1)
    write_job(cluster.root("node-b"), "after-b", current_step=1)
    after = {"after-a": "node-a", "after-b": "node-b"}
    for sidecar in (a, b, gateway):
        await wait_for(lambda s=sidecar: has_jobs(cluster, s, after), what=sidecar.name)
    for sidecar, node, step in ((a, "node-a", 4), (b, "node-b", 105), (gateway, "node-a", 4)):
        twin = (await cluster.jobs(sidecar))["twin"]
        assert (twin["node"], twin["current_step"]) == (node, step), sidecar.name
    for sidecar, other in ((a, "node-b"), (b, "node-a"), (gateway, "node-b")):
        log = await cluster.stop(sidecar)
        assert log.count(f"job twin: node {other} has a job of that id too") == 1, log
        assert log.count("has a job of that id too") == 1 and "Traceback" not in log, log


def _published_step(redis: Any, node: str, job_id: str) -> Any:
    """The ``current_step`` of a job as its node last wrote it to Redis (None: not yet)."""
    raw = redis.hget(keys.jobs_key(node), job_id)
    return json.loads(raw)["document"].get("current_step") if raw else None


async def test_jobs_gone_while_their_node_was_down_go_from_the_cluster(cluster: Cluster) -> None:
    root = cluster.root("node-a")
    write_job(root, "stays", current_step=1)
    write_job(root, "goes", current_step=1)
    a = await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: has_jobs(cluster, gateway, {"stays": "node-a", "goes": "node-a"}))
    await cluster.stop(a)
    shutil.rmtree(root / "goes")
    await cluster.start("node-a")
    await wait_for(lambda: absent(cluster, gateway, "goes"), what="the job that went, gone")
    assert "stays" in await cluster.jobs(gateway)
    assert "goes" not in await cluster.jobs(await cluster.start(None))


async def test_a_stopped_node_with_nothing_running_is_forgotten(cluster: Cluster) -> None:
    """Lost with nothing running, a node leaves the sidecar, its finished jobs with it; lost
    under a running job, it stays, shown lost."""
    write_job(cluster.root("node-b"), "done-b", status="completed")
    write_job(cluster.root("node-c"), "running-c", current_step=1)
    b = await cluster.start("node-b")
    c = await cluster.start("node-c")
    gateway = await cluster.start(None)
    await wait_for(lambda: has_jobs(cluster, gateway, {"done-b": "node-b", "running-c": "node-c"}))
    await cluster.stop(b)  # decommissioned: nothing of it runs
    await cluster.stop(c)  # stopped under a running job: that job has nobody to follow it
    await wait_for(lambda: _lost(cluster, gateway, ["node-c"]), timeout=10, what="node-c lost")
    health = await cluster.get(gateway, "/healthz")
    assert set(health["nodes"]) == {"node-c"}  # node-b is forgotten, not lost
    jobs = await cluster.jobs(gateway)
    assert jobs["running-c"]["stall_reason"] == "node lost"
    assert "done-b" not in jobs  # gone with its node: nothing of it is held any more
    async with cluster.session.get(gateway.url("/api/jobs/done-b")) as response:
        assert response.status == 404
    log = await cluster.stop(gateway)
    assert "node node-b: its sidecar stopped" in log
    assert "node node-b is gone" in log and "node node-b lost" not in log
    assert "node node-c lost" in log


async def _lost(cluster: Cluster, sidecar: Sidecar, nodes: list[str]) -> bool:
    return bool((await cluster.get(sidecar, "/healthz"))["lost_nodes"] == nodes)
