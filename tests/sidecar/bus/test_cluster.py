"""Cluster mode end to end: a real redis-server, node sidecars on their own roots and gateways,
all real processes; the fault tests kill and restart Redis and the sidecars."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.bus.defaults import STREAM_LENGTH
from tests.helpers import StreamClient, spawn_sidecar, stop_sidecar, wait_for, write_atomic
from tests.redis_server import RedisServer

NODE_TIMEOUT = "1.5"
PREFIX = "{progress-sidecar}:"
CHANGES = PREFIX + "changes"

pytestmark = pytest.mark.timeout(90)


class Sidecar:
    """One sidecar process of the cluster."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, name: str) -> None:
        self.process, self.port, self.name = process, port, name

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class Cluster:
    def __init__(self, redis: RedisServer, tmp_path: Path, session: aiohttp.ClientSession) -> None:
        self.redis = redis
        self.tmp_path = tmp_path
        self.session = session
        self.sidecars: list[Sidecar] = []
        self.logs: dict[str, str] = {}

    def root(self, node: str) -> Path:
        root = self.tmp_path / f"root-{node}"
        root.mkdir(exist_ok=True)
        return root

    async def start(self, node: str | None, *args: str, url: str | None = None) -> Sidecar:
        """A node sidecar on its own root, or (``node`` None) a gateway."""
        root = self.root(node) if node is not None else None
        name = node or f"gateway{len(self.sidecars)}"
        process, _, port = await spawn_sidecar(
            root,
            "--redis", url or self.redis.url, "--node", name,
            "--node-timeout", NODE_TIMEOUT, "--log-level", "debug", *args,
        )  # fmt: skip
        sidecar = Sidecar(process, port, name)
        self.sidecars.append(sidecar)
        return sidecar

    async def stop(self, sidecar: Sidecar) -> str:
        self.sidecars.remove(sidecar)
        self.logs[sidecar.name] = await stop_sidecar(sidecar.process)
        return self.logs[sidecar.name]

    async def kill(self, sidecar: Sidecar) -> None:
        """SIGKILL: a node that dies without a word."""
        self.sidecars.remove(sidecar)
        sidecar.process.send_signal(signal.SIGKILL)
        await sidecar.process.wait()

    async def get(self, sidecar: Sidecar, path: str) -> Any:
        async with self.session.get(sidecar.url(path)) as response:
            assert response.status == 200, (path, response.status)
            return await response.json()

    async def jobs(self, sidecar: Sidecar) -> dict[str, dict[str, Any]]:
        body = await self.get(sidecar, "/api/jobs")
        return {job["job_id"]: job for job in body["jobs"]}

    async def follow(self, sidecar: Sidecar, job_id: str, query: str = "") -> StreamClient:
        url = sidecar.url(f"/ws/training/{job_id}").replace("http", "ws", 1)
        ws = await self.session.ws_connect(f"{url}?{query}" if query else url, autoclose=False)
        return StreamClient(ws)


@pytest.fixture
async def cluster(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Cluster]:
    async with aiohttp.ClientSession() as session:
        cluster = Cluster(redis_server, tmp_path, session)
        try:
            yield cluster
        finally:
            for sidecar in list(cluster.sidecars):
                await cluster.stop(sidecar)


def write_job(root: Path, job_id: str, **fields: Any) -> None:
    write_atomic(root / job_id / "progress.json", {"status": "running", **fields})


async def test_every_sidecar_serves_every_job_of_every_node(cluster: Cluster) -> None:
    write_job(cluster.root("node-a"), "job-a", current_step=1)
    write_job(cluster.root("node-b"), "job-b", current_step=5)
    a = await cluster.start("node-a")
    b = await cluster.start("node-b")
    gateway = await cluster.start(None)
    for sidecar in (a, b, gateway):
        await wait_for(
            lambda s=sidecar: _has_jobs(cluster, s, {"job-a": "node-a", "job-b": "node-b"}),
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
    await wait_for(lambda: _has_jobs(cluster, gateway, {"job-a": "node-a"}), what="job-a")
    health = await cluster.get(gateway, "/healthz")
    assert "node" not in health and set(health["nodes"]) == {"node-a"}


async def test_history_of_another_nodes_job(cluster: Cluster) -> None:
    root = cluster.root("node-a")
    write_job(root, "job-a", current_step=2)
    lines = "".join(f'{{"step": {i}, "loss": {1 / (i + 1)}}}\n' for i in range(1, 301))
    (root / "job-a" / "metrics.jsonl").write_text(lines)
    await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: _has_jobs(cluster, gateway, {"job-a": "node-a"}), what="job-a")
    history = await cluster.get(gateway, "/api/jobs/job-a/history")
    assert [e["step"] for e in history["entries"]] == list(range(1, 301))

    client = await cluster.follow(gateway, "job-a", "history=1")
    await wait_for(_history_length(client, 300), what="the whole history over the gateway")
    with (root / "job-a" / "metrics.jsonl").open("a") as f:
        f.write('{"step": 301, "loss": 0.001}\n{"step": 302, "loss": 0.0009}\n')
    await wait_for(_history_length(client, 302), what="appended lines over the gateway")
    assert client.history is not None
    assert [e["step"] for e in client.history] == list(range(1, 303))


async def test_a_client_resumes_on_another_sidecar(cluster: Cluster) -> None:
    root = cluster.root("node-a")
    write_job(root, "job-a", current_step=1, loss=2.0)
    a = await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: _has_jobs(cluster, gateway, {"job-a": "node-a"}), what="job-a")
    client = await cluster.follow(a, "job-a")
    await client.until(lambda s: s.get("current_step") == 1)
    held, last = client.state, client.messages[-1]
    await client.ws.close()
    write_job(root, "job-a", current_step=2, loss=1.5)
    await wait_for(lambda: _job_field(cluster, gateway, "job-a", "current_step", 2), what="step 2")

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
    await wait_for(lambda: _has_jobs(cluster, gateway, {"running-b": "node-b", "job-a": "node-a"}))
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


async def test_bus_down_local_serving_goes_on_and_no_final_state_is_lost(
    cluster: Cluster,
) -> None:
    root = cluster.root("node-a")
    write_job(root, "job-a", current_step=1)
    a = await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: _has_jobs(cluster, gateway, {"job-a": "node-a"}), what="job-a")
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
    await wait_for(lambda: _has_jobs(cluster, gateway, expected), what="every job")
    client = await cluster.follow(gateway, "job-a")  # asserts seq never goes back in an epoch
    other = await cluster.follow(gateway, "job-b")
    await client.until(lambda s: s.get("current_step") == 3)
    await other.until(lambda s: s.get("current_step") == 7)

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
    await wait_for(lambda: _has_jobs(cluster, late, expected), timeout=15, what="republished")
    keys = cluster.redis.client().keys("{progress-sidecar}:job:*")
    assert len(keys) == 3
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


def _announced(redis: Any, node: str) -> Any:
    """When (Redis' clock, ms) a node first announced itself in the stream (None: not yet)."""
    for entry_id, fields in redis.xrange(CHANGES):
        message = json.loads(fields[b"m"])
        if message["kind"] == "heartbeat" and message["node"] == node:
            return int(entry_id.split(b"-")[0])
    return None


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


async def test_wrong_credentials_are_a_configuration_error(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    redis_server.stop()
    locked = RedisServer(tmp_path, password="right-password")
    locked.start()
    try:
        for url, said in (
            (f"redis://:wrong-password@127.0.0.1:{locked.port}/0", "Redis refused the connection"),
            (f"redis://127.0.0.1:{locked.port}/0", "Redis wants a password and the URL has none"),
        ):
            process = await asyncio.create_subprocess_exec(
                *_sidecar_command(tmp_path, url),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await asyncio.wait_for(process.communicate(), 20)
            assert process.returncode == 2, err
            lines = err.decode().strip().splitlines()
            assert len(lines) == 1 and said in lines[0], lines
            assert "wrong-password" not in err.decode() and "Traceback" not in err.decode()
    finally:
        locked.stop()


async def test_the_password_never_shows(tmp_path: Path, redis_server: RedisServer) -> None:
    redis_server.stop()
    locked = RedisServer(tmp_path, password="s3cret-pass")
    locked.start()
    try:
        process, _, port = await spawn_sidecar(
            tmp_path, "--redis", locked.url, "--log-level", "debug"
        )
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/healthz") as response,
        ):
            health = await response.text()
        assert '"bus": "up"' in health and "s3cret" not in health
        locked.kill()  # the bus goes down: its error lines must not show it either

        async def bus_down() -> bool:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/healthz") as response,
            ):
                return bool((await response.json())["bus"] == "down")

        await wait_for(bus_down, what="the bus down")
        log = await stop_sidecar(process)
        assert "bus down" in log and "s3cret" not in log
    finally:
        locked.stop()


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
    await wait_for(lambda: _has_jobs(cluster, gateway, {"job-a": "node-a"}), what="published")
    log = await cluster.stop(a)
    assert "bus unreachable at start" in log and "Traceback" not in log


async def test_the_same_job_id_on_two_nodes_warns_once(cluster: Cluster) -> None:
    """Each node serves its own job of the id; every other sidecar serves the first node's it
    saw, whatever the second writes; each says so once."""
    write_job(cluster.root("node-a"), "twin", current_step=1)
    a = await cluster.start("node-a")
    gateway = await cluster.start(None)
    b = await cluster.start("node-b")
    first = {"twin": "node-a"}
    for sidecar in (gateway, b):
        await wait_for(lambda s=sidecar: _has_jobs(cluster, s, first), what=sidecar.name)
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
        await wait_for(lambda s=sidecar: _has_jobs(cluster, s, after), what=sidecar.name)
    for sidecar, node, step in ((a, "node-a", 4), (b, "node-b", 105), (gateway, "node-a", 4)):
        twin = (await cluster.jobs(sidecar))["twin"]
        assert (twin["node"], twin["current_step"]) == (node, step), sidecar.name
    for sidecar, other in ((a, "node-b"), (b, "node-a"), (gateway, "node-b")):
        log = await cluster.stop(sidecar)
        assert log.count(f"job twin: node {other} has a job of that id too") == 1, log
        assert log.count("has a job of that id too") == 1 and "Traceback" not in log, log


def _published_step(redis: Any, node: str, job_id: str) -> Any:
    """The ``current_step`` of a job as its node last wrote it to Redis (None: not yet)."""
    raw = redis.get(f"{{progress-sidecar}}:job:{node}/{job_id}")
    return json.loads(raw)["document"].get("current_step") if raw else None


async def test_redis_memory_stays_bounded(cluster: Cluster) -> None:
    """Under a load past every limit, Redis holds the stream at its length, each history at
    --max-history entries, a few keys a job and nothing else; the keys expire."""
    max_history, rounds, line_bytes, quiet_jobs = 50, 20, 4096, 150
    root = cluster.root("node-a")
    write_job(root, "finished", status="completed")
    write_job(root, "running", current_step=0)
    for i in range(quiet_jobs):
        write_job(root, f"quiet{i}", current_step=i)
    redis = cluster.redis.client()
    empty = redis.info("memory")["used_memory"]
    # The stream already at its length: every change the node adds must push one out.
    with redis.pipeline(transaction=False) as pipe:
        for _ in range(STREAM_LENGTH):
            pipe.xadd(CHANGES, {"m": b"{}"})
        pipe.execute()
    await cluster.start("node-a", "--max-history", str(max_history))
    jobs = quiet_jobs + 2
    await wait_for(lambda: len(redis.keys(f"{PREFIX}job:*")) == jobs, what="every job published")

    # The history grows by far more than the node keeps, a round at a time, each published.
    pad = "x" * (line_bytes - 40)
    with (root / "running" / "metrics.jsonl").open("a") as f:
        for step in range(rounds * max_history):
            f.write(json.dumps({"step": step, "pad": pad}) + "\n")
            if step % max_history == max_history - 1:
                f.flush()
                await wait_for(lambda s=step: _last_step(redis) == s, what=f"step {step}")

    stream = redis.xinfo_stream(CHANGES)
    assert stream["entries-added"] >= STREAM_LENGTH + 2 * jobs  # a state, a history each...
    assert stream["length"] <= STREAM_LENGTH + 100  # ...and Redis trims whole nodes of 100
    history = redis.lrange(f"{PREFIX}history:node-a/running", 0, -1)
    last = rounds * max_history
    assert [json.loads(e)["step"] for e in history] == list(range(last - max_history, last))
    assert redis.dbsize() <= 3 * jobs + 2  # a state, a history and its mark a job; node, stream
    # Memory: the stream (its length checked above), and what the limits allow of the rest.
    keys_budget = 3 * jobs * 1024 + max_history * (line_bytes + 64)
    rest = redis.info("memory")["used_memory"] - redis.memory_usage(CHANGES, samples=0)
    assert rest - empty < keys_budget + (1 << 20), (rest - empty, keys_budget)

    finished_ttl = redis.ttl(f"{PREFIX}job:node-a/finished")
    running_ttl = redis.ttl(f"{PREFIX}job:node-a/running")
    assert 23 * 3600 < finished_ttl <= 24 * 3600  # a finished job expires after a day
    assert 6 * 24 * 3600 < running_ttl <= 7 * 24 * 3600  # a quiet one after a week
    assert 6 * 24 * 3600 < redis.ttl(f"{PREFIX}history:node-a/running") <= 7 * 24 * 3600


def _last_step(redis: Any) -> Any:
    """The step of the last entry of job "running"'s history in Redis (None: none yet)."""
    last = redis.lindex(f"{PREFIX}history:node-a/running", -1)
    return json.loads(last)["step"] if last else None


async def _has_jobs(cluster: Cluster, sidecar: Sidecar, expected: dict[str, str]) -> bool:
    jobs = await cluster.jobs(sidecar)
    return all(job in jobs and jobs[job]["node"] == node for job, node in expected.items())


async def _count(cluster: Cluster, sidecar: Sidecar, count: int) -> bool:
    return len(await cluster.jobs(sidecar)) == count


async def _job_field(cluster: Cluster, sidecar: Sidecar, job: str, key: str, value: Any) -> bool:
    return (await cluster.jobs(sidecar)).get(job, {}).get(key) == value


async def _bus(cluster: Cluster, sidecar: Sidecar, status: str) -> bool:
    return bool((await cluster.get(sidecar, "/healthz"))["bus"] == status)


def _history_length(client: StreamClient, length: int) -> Any:
    async def enough() -> bool:
        while client.history is None or len(client.history) < length:
            if await client.next(timeout=10) is None:
                return False
        return len(client.history) == length

    return enough


def _sidecar_command(root: Path, url: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "sidecar", "--root", str(root), "--port", "0", "--redis", url]


async def test_a_malformed_message_is_logged_and_the_bus_goes_on(cluster: Cluster) -> None:
    root = cluster.root("node-a")
    write_job(root, "job-a", current_step=1)
    await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: _has_jobs(cluster, gateway, {"job-a": "node-a"}), what="job-a")
    redis = cluster.redis.client()
    bad = b'{"kind":"state","node":"x","job_id":"j","epoch":"e","seq":1,"document":["x"],'
    bad += b'"modified_at":1,"has_file":true}'
    redis.xadd("{progress-sidecar}:changes", {"m": bad})
    redis.xadd("{progress-sidecar}:changes", {"m": b"not json"})
    redis.set("{progress-sidecar}:job:x/j", bad)  # and for a gateway that starts now
    write_job(root, "job-a", current_step=2)
    await wait_for(lambda: _job_field(cluster, gateway, "job-a", "current_step", 2), what="2")
    late = await cluster.start(None)
    assert (await cluster.jobs(late))["job-a"]["current_step"] == 2
    assert (await cluster.get(gateway, "/healthz"))["bus"] == "up"
    log = await cluster.stop(gateway)
    assert "ignored a message that is not this protocol's" in log and "Traceback" not in log


async def test_jobs_gone_while_their_node_was_down_go_from_the_cluster(cluster: Cluster) -> None:
    root = cluster.root("node-a")
    write_job(root, "stays", current_step=1)
    write_job(root, "goes", current_step=1)
    a = await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: _has_jobs(cluster, gateway, {"stays": "node-a", "goes": "node-a"}))
    await cluster.stop(a)
    shutil.rmtree(root / "goes")
    await cluster.start("node-a")
    await wait_for(lambda: _absent(cluster, gateway, "goes"), what="the job that went, gone")
    assert "stays" in await cluster.jobs(gateway)
    assert "goes" not in await cluster.jobs(await cluster.start(None))


async def test_histories_survive_node_restarts_replaced_files_and_recreated_jobs(
    cluster: Cluster,
) -> None:
    root = cluster.root("node-a")
    write_job(root, "job", current_step=1)
    metrics = root / "job" / "metrics.jsonl"
    metrics.write_text('{"step": 1}\n{"step": 2}\n')
    a = await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: _has_jobs(cluster, gateway, {"job": "node-a"}), what="the job")
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
    await wait_for(lambda: _absent(cluster, gateway, "job"), what="the job gone")
    write_job(root, "job", current_step=1)
    (root / "job" / "metrics.jsonl").write_text('{"step": 100}\n')
    await wait_for(lambda: _has_jobs(cluster, gateway, {"job": "node-a"}), what="the job again")
    await wait_for(lambda: _steps_are(cluster, gateway, "job", [100]), what="its new history")


async def test_a_history_read_while_redis_pauses_is_read_when_it_answers(
    cluster: Cluster,
) -> None:
    root = cluster.root("node-a")
    write_job(root, "job", current_step=1)
    (root / "job" / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: _has_jobs(cluster, gateway, {"job": "node-a"}), what="the job")
    cluster.redis.client().client_pause(6000)  # past the bus's socket timeout: it fails
    assert await _steps(cluster, gateway, "job") == [1, 2]


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


async def _absent(cluster: Cluster, sidecar: Sidecar, job_id: str) -> bool:
    return job_id not in await cluster.jobs(sidecar)


async def _steps(cluster: Cluster, sidecar: Sidecar, job_id: str) -> list[int]:
    history = await cluster.get(sidecar, f"/api/jobs/{job_id}/history")
    return [entry["step"] for entry in history["entries"]]


async def _steps_are(cluster: Cluster, sidecar: Sidecar, job_id: str, steps: list[int]) -> bool:
    return await _steps(cluster, sidecar, job_id) == steps


async def test_a_stopped_node_with_nothing_running_is_forgotten(cluster: Cluster) -> None:
    write_job(cluster.root("node-b"), "done-b", status="completed")
    write_job(cluster.root("node-c"), "running-c", current_step=1)
    b = await cluster.start("node-b")
    c = await cluster.start("node-c")
    gateway = await cluster.start(None)
    await wait_for(lambda: _has_jobs(cluster, gateway, {"done-b": "node-b", "running-c": "node-c"}))
    await cluster.stop(b)  # decommissioned: nothing of it runs
    await cluster.stop(c)  # stopped under a running job: that job has nobody to follow it
    await wait_for(lambda: _lost(cluster, gateway, ["node-c"]), timeout=10, what="node-c lost")
    health = await cluster.get(gateway, "/healthz")
    assert set(health["nodes"]) == {"node-c"}  # node-b is forgotten, not lost
    jobs = await cluster.jobs(gateway)
    assert jobs["running-c"]["stall_reason"] == "node lost"
    assert jobs["done-b"]["status"] == "completed" and not jobs["done-b"]["stalled"]
    log = await cluster.stop(gateway)
    assert "node node-b: its sidecar stopped" in log
    assert "node node-b is gone" in log and "node node-b lost" not in log
    assert "node node-c lost" in log


async def _lost(cluster: Cluster, sidecar: Sidecar, nodes: list[str]) -> bool:
    return bool((await cluster.get(sidecar, "/healthz"))["lost_nodes"] == nodes)
