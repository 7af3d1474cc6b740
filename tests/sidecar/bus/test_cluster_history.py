"""Cluster mode: a job's history served by sidecars other than its node's."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from tests.helpers import StreamClient, wait_for
from tests.sidecar.bus.cluster import Cluster, Sidecar, absent, has_jobs, write_job

pytestmark = pytest.mark.timeout(90)


async def test_history_of_another_nodes_job(cluster: Cluster) -> None:
    root = cluster.root("node-a")
    write_job(root, "job-a", current_step=2)
    lines = "".join(f'{{"step": {i}, "loss": {1 / (i + 1)}}}\n' for i in range(1, 301))
    (root / "job-a" / "metrics.jsonl").write_text(lines)
    await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: has_jobs(cluster, gateway, {"job-a": "node-a"}), what="job-a")
    history = await cluster.get(gateway, "/api/jobs/job-a/history")
    assert [e["step"] for e in history["entries"]] == list(range(1, 301))

    client = await cluster.follow(gateway, "job-a", "history=1")
    await wait_for(_history_length(client, 300), what="the whole history over the gateway")
    with (root / "job-a" / "metrics.jsonl").open("a") as f:
        f.write('{"step": 301, "loss": 0.001}\n{"step": 302, "loss": 0.0009}\n')
    await wait_for(_history_length(client, 302), what="appended lines over the gateway")
    assert client.history is not None
    assert [e["step"] for e in client.history] == list(range(1, 303))


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
async def test_a_finished_job_of_another_node_streams_its_whole_history_before_the_end(
    cluster: Cluster, status: str
) -> None:
    """The gateway reads a finished job's history from Redis only when a client asks for it:
    the stream waits for it, and sends it whole, before the final close."""
    root = cluster.root("node-a")
    write_job(root, "done-a", status=status, complete=True, final_loss=0.1)
    lines = "".join(f'{{"step": {i}, "loss": {1 / (i + 1)}}}\n' for i in range(1, 201))
    (root / "done-a" / "metrics.jsonl").write_text(lines)
    await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: has_jobs(cluster, gateway, {"done-a": "node-a"}), what="done-a")

    client = await cluster.follow(gateway, "done-a", "history=1")
    assert await client.closed() == 1000
    assert [m["type"] for m in client.messages] == ["snapshot", "log"]
    assert client.state is not None and client.state["status"] == status
    assert client.history is not None
    assert [e["step"] for e in client.history] == list(range(1, 201))


async def test_histories_survive_node_restarts_replaced_files_and_recreated_jobs(
    cluster: Cluster,
) -> None:
    root = cluster.root("node-a")
    write_job(root, "job", current_step=1)
    metrics = root / "job" / "metrics.jsonl"
    metrics.write_text('{"step": 1}\n{"step": 2}\n')
    a = await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: has_jobs(cluster, gateway, {"job": "node-a"}), what="the job")
    assert await _steps(cluster, gateway, "job") == [1, 2]
    temporary = metrics.with_name("m.tmp")
    temporary.write_text('{"step": 10}\n')
    temporary.replace(metrics)  # the node's history starts over (a new generation)
    await wait_for(lambda: _steps_are(cluster, gateway, "job", [10]), what="the new file")
    await cluster.stop(a)
    a = await cluster.start("node-a")  # a new process: its own numbering
    with metrics.open("a") as f:
        f.write('{"step": 11}\n')
    await wait_for(lambda: _steps_are(cluster, gateway, "job", [10, 11]), what="after restart")

    shutil.rmtree(root / "job")  # the job goes, and comes again under the same id
    await wait_for(lambda: absent(cluster, gateway, "job"), what="the job gone")
    write_job(root, "job", current_step=1)
    (root / "job" / "metrics.jsonl").write_text('{"step": 100}\n')
    await wait_for(lambda: has_jobs(cluster, gateway, {"job": "node-a"}), what="the job again")
    await wait_for(lambda: _steps_are(cluster, gateway, "job", [100]), what="its new history")


async def test_a_history_read_while_redis_pauses_is_read_when_it_answers(
    cluster: Cluster,
) -> None:
    root = cluster.root("node-a")
    write_job(root, "job", current_step=1)
    (root / "job" / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: has_jobs(cluster, gateway, {"job": "node-a"}), what="the job")
    cluster.redis.client().client_pause(6000)  # past the bus's socket timeout: it fails
    assert await _steps(cluster, gateway, "job") == [1, 2]


def _history_length(client: StreamClient, length: int) -> Any:
    async def enough() -> bool:
        while client.history is None or len(client.history) < length:
            if await client.next(timeout=10) is None:
                return False
        return len(client.history) == length

    return enough


async def _steps(cluster: Cluster, sidecar: Sidecar, job_id: str) -> list[int]:
    history = await cluster.get(sidecar, f"/api/jobs/{job_id}/history")
    return [entry["step"] for entry in history["entries"]]


async def _steps_are(cluster: Cluster, sidecar: Sidecar, job_id: str, steps: list[int]) -> bool:
    return await _steps(cluster, sidecar, job_id) == steps
