"""Cluster mode: every sidecar, node or gateway, serves every job of every node."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import wait_for
from tests.sidecar.bus.cluster import Cluster, Sidecar, has_jobs, job_field, write_job

pytestmark = pytest.mark.timeout(90)


async def test_every_sidecar_serves_every_job_of_every_node(cluster: Cluster) -> None:
    write_job(cluster.root("node-a"), "job-a", current_step=1)
    write_job(cluster.root("node-b"), "job-b", current_step=5)
    a = await cluster.start("node-a")
    b = await cluster.start("node-b")
    gateway = await cluster.start(None)
    for sidecar in (a, b, gateway):
        await wait_for(
            lambda s=sidecar: has_jobs(cluster, s, {"job-a": "node-a", "job-b": "node-b"}),
            what=f"both jobs on {sidecar.name}",
        )
    health = await cluster.get(gateway, "/healthz")
    assert health["bus"] == "up" and health["role"] == "gateway"
    assert set(health["nodes"]) == {"node-a", "node-b"}
    assert "root" not in health

    # One write on node a: the same version, under the same name, everywhere.
    direct = await cluster.follow(a, "job-a")
    relayed = await cluster.follow(gateway, "job-a")
    other = await cluster.follow(b, "job-a")
    for client in (direct, relayed, other):
        await client.until(lambda s: s.get("current_step") == 1)
    write_job(cluster.root("node-a"), "job-a", current_step=2, loss=0.5)
    for client in (direct, relayed, other):
        state = await client.until(lambda s: s.get("current_step") == 2)
        assert state["node"] == "node-a" and state["loss"] == 0.5
    names = {(c.messages[-1]["epoch"], c.messages[-1]["seq"]) for c in (direct, relayed, other)}
    assert len(names) == 1, names

    # The REST fallback and the completion, through the gateway.
    snapshot = await cluster.get(gateway, "/api/jobs/job-a")
    assert snapshot["current_step"] == 2 and snapshot["node"] == "node-a"
    write_job(cluster.root("node-a"), "job-a", status="completed", final_loss=0.25)
    codes = await asyncio.gather(*(c.closed() for c in (direct, relayed, other)))
    assert codes == [1000, 1000, 1000]
    assert relayed.state is not None and relayed.state["final_loss"] == 0.25
    assert relayed.state == direct.state == other.state


async def test_a_gateway_on_a_nodes_machine_serves_that_nodes_jobs(cluster: Cluster) -> None:
    """Both take the host name as their node name by default: the gateway owns no job."""
    write_job(cluster.root("node-a"), "job-a", current_step=1)
    await cluster.start("node-a")
    gateway = await cluster.start(None, "--node", "node-a")
    await wait_for(lambda: has_jobs(cluster, gateway, {"job-a": "node-a"}), what="job-a")
    health = await cluster.get(gateway, "/healthz")
    assert "node" not in health and set(health["nodes"]) == {"node-a"}


async def test_a_client_resumes_on_another_sidecar(cluster: Cluster) -> None:
    root = cluster.root("node-a")
    write_job(root, "job-a", current_step=1, loss=2.0)
    a = await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: has_jobs(cluster, gateway, {"job-a": "node-a"}), what="job-a")
    client = await cluster.follow(a, "job-a")
    await client.until(lambda s: s.get("current_step") == 1)
    held, last = client.state, client.messages[-1]
    await client.ws.close()
    write_job(root, "job-a", current_step=2, loss=1.5)
    await wait_for(lambda: job_field(cluster, gateway, "job-a", "current_step", 2), what="step 2")

    again = await cluster.follow(gateway, "job-a", f"since={last['epoch']}:{last['seq']}")
    first = await again.next()
    assert first is not None and first["type"] == "patch" and first["resumed"] is True
    assert first["current_step"] == 2 and "status" not in first  # a patch, not the whole state
    assert held is not None
    expected = await cluster.get(a, "/api/jobs/job-a")
    again.state = {**held, **{k: v for k, v in first.items() if k not in ("type", "resumed")}}
    assert {k: v for k, v in again.state.items() if k not in ("epoch", "seq")} == {
        k: v for k, v in expected.items() if k not in ("type", "epoch", "seq")
    }


async def test_a_gateway_started_late_knows_every_job_before_it_serves(cluster: Cluster) -> None:
    for node in ("node-a", "node-b"):
        for i in range(20):
            write_job(cluster.root(node), f"{node}-job{i}", current_step=i)
    await cluster.start("node-a")
    await cluster.start("node-b")
    first = await cluster.start(None)
    await wait_for(lambda: _count(cluster, first, 40), what="40 jobs on the first gateway")
    late = await cluster.start(None)
    jobs = await cluster.jobs(late)  # the first request after it said it listens
    assert len(jobs) == 40
    assert jobs["node-b-job7"]["current_step"] == 7 and jobs["node-b-job7"]["node"] == "node-b"


async def _count(cluster: Cluster, sidecar: Sidecar, count: int) -> bool:
    return len(await cluster.jobs(sidecar)) == count
