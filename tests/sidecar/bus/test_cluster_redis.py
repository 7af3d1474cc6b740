"""Cluster mode: Redis credentials, what Redis holds, and malformed entries on the bus."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.bus import keys, wire
from sidecar.bus.defaults import STREAM_LENGTH
from sidecar.core.state import JobState
from tests.helpers import spawn_sidecar, stop_sidecar, wait_for
from tests.redis_server import RedisServer
from tests.sidecar.bus.cluster import Cluster, Sidecar, has_jobs, job_field, write_job

pytestmark = pytest.mark.timeout(90)


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


def _sidecar_command(root: Path, url: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "sidecar", "--root", str(root), "--port", "0", "--redis", url]


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


async def test_redis_memory_stays_bounded(cluster: Cluster) -> None:
    """Under a load past every limit, Redis holds the node's stream at its length, each history
    at --max-history entries, a few keys a job and nothing else; the keys expire."""
    max_history, rounds, line_bytes, quiet_jobs = 50, 20, 4096, 150
    root = cluster.root("node-a")
    write_job(root, "finished", status="completed")
    (root / "finished" / "metrics.jsonl").write_text('{"step": 1}\n')
    write_job(root, "running", current_step=0)
    for i in range(quiet_jobs):
        write_job(root, f"quiet{i}", current_step=i)
    redis = cluster.redis.client()
    changes, jobs_hash = keys.changes_key("node-a"), keys.jobs_key("node-a")
    empty = redis.info("memory")["used_memory"]
    # The stream already at its length: every change the node adds must push one out.
    with redis.pipeline(transaction=False) as pipe:
        for _ in range(STREAM_LENGTH):
            pipe.xadd(changes, {keys.FIELD: wire.heartbeat_message("e0")})
        pipe.execute()
    await cluster.start("node-a", "--max-history", str(max_history))
    jobs = quiet_jobs + 2
    await wait_for(lambda: redis.hlen(jobs_hash) == jobs, what="every job published")

    # The history grows by far more than the node keeps, a round at a time, each published.
    pad = "x" * (line_bytes - 40)
    with (root / "running" / "metrics.jsonl").open("a") as f:
        for step in range(rounds * max_history):
            f.write(json.dumps({"step": step, "pad": pad}) + "\n")
            if step % max_history == max_history - 1:
                f.flush()
                await wait_for(lambda s=step: _last_step(redis) == s, what=f"step {step}")

    stream = redis.xinfo_stream(changes)
    assert stream["entries-added"] >= STREAM_LENGTH + 2 * jobs  # a state, a history each...
    assert stream["length"] <= STREAM_LENGTH + 100  # ...and Redis trims whole nodes of 100
    history = redis.lrange(keys.history_key("node-a", "running"), 0, -1)
    last = rounds * max_history
    assert [json.loads(e)["step"] for e in history] == list(range(last - max_history, last))
    # A history mark a job, two history lists; the node's announcement, stream and jobs hash.
    assert redis.dbsize() <= jobs + 2 + 3, redis.keys("*")
    assert all(key.startswith(keys.node_prefix("node-a").encode()) for key in redis.keys("*"))
    # Memory: the stream (its length checked above), and what the limits allow of the rest.
    keys_budget = 3 * jobs * 1024 + max_history * (line_bytes + 64)
    rest = redis.info("memory")["used_memory"] - redis.memory_usage(changes, samples=0)
    assert rest - empty < keys_budget + (1 << 20), (rest - empty, keys_budget)

    day, week = 24 * 3600, 7 * 24 * 3600
    for key in (keys.history_key, keys.history_mark_key):
        assert day - 3600 < redis.ttl(key("node-a", "finished")) <= day  # a finished job's: a day
        assert week - day < redis.ttl(key("node-a", "running")) <= week  # a quiet job's: a week
    # The node's stream and jobs hash outlive it by a week; each heartbeat pushes that back.
    redis.expire(jobs_hash, 100)
    redis.expire(changes, 100)
    await wait_for(
        lambda: min(redis.ttl(jobs_hash), redis.ttl(changes)) > week - day, what="refreshed"
    )
    assert 0 < redis.ttl(keys.alive_key("node-a")) <= 2  # the node timeout, 1.5 s, rounded up


def _last_step(redis: Any) -> Any:
    """The step of the last entry of job "running"'s history in Redis (None: none yet)."""
    last = redis.lindex(keys.history_key("node-a", "running"), -1)
    return json.loads(last)["step"] if last else None


async def test_a_malformed_message_is_dropped_counted_and_the_bus_goes_on(
    cluster: Cluster,
) -> None:
    """What another program writes in a node's keys is dropped, counted and logged; what comes
    after it in that node's stream, and every other node's, still goes through."""
    root = cluster.root("node-a")
    write_job(root, "job-a", current_step=1)
    await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: has_jobs(cluster, gateway, {"job-a": "node-a"}), what="job-a")
    redis = cluster.redis.client()
    bad = json.loads(wire.state_message(JobState("j", {}, 1.0, has_file=True), "e1", 1))
    bad = json.dumps({**bad, "document": ["x"]}).encode()
    redis.hset(keys.jobs_key("node-x"), "j", bad)  # read whole by each sidecar that finds node-x
    redis.set(keys.alive_key("node-x"), b"e1")
    redis.xadd(keys.changes_key("node-x"), {keys.FIELD: wire.heartbeat_message("e1")})
    await wait_for(lambda: _knows(cluster, gateway, "node-x"), what="node-x found")
    for data in (bad, b"not json"):
        redis.xadd(keys.changes_key("node-x"), {keys.FIELD: data})
    good = wire.state_message(JobState("ok-x", {"status": "running"}, 1.0, has_file=True), "e1", 2)
    redis.xadd(keys.changes_key("node-x"), {keys.FIELD: good})
    redis.hset(keys.jobs_key("node-x"), "ok-x", good)  # as a node writes its state: both
    write_job(root, "job-a", current_step=2)
    await wait_for(lambda: job_field(cluster, gateway, "job-a", "current_step", 2), what="2")
    await wait_for(lambda: has_jobs(cluster, gateway, {"ok-x": "node-x"}), what="node-x's good")
    assert "j" not in await cluster.jobs(gateway)
    assert await _dropped(cluster, gateway) == 3  # one in the hash, two in the stream
    late = await cluster.start(None)
    late_jobs = await cluster.jobs(late)
    assert late_jobs["job-a"]["current_step"] == 2 and "ok-x" in late_jobs and "j" not in late_jobs
    assert await _dropped(cluster, late) == 1  # the stream is followed from where it stands
    assert (await cluster.get(gateway, "/healthz"))["bus"] == "up"
    log = await cluster.stop(gateway)
    assert "bus: node node-x: dropped an entry not this protocol's: " in log, log
    assert log.count("not this protocol's") == 3 and "Traceback" not in log, log


async def _knows(cluster: Cluster, sidecar: Sidecar, node: str) -> bool:
    return node in (await cluster.get(sidecar, "/healthz"))["nodes"]


async def _dropped(cluster: Cluster, sidecar: Sidecar) -> float:
    async with cluster.session.get(sidecar.url("/metrics")) as response:
        metrics = await response.text()
    for line in metrics.splitlines():
        if line.startswith("sidecar_bus_entries_dropped_total "):
            return float(line.split()[1])
    raise AssertionError(metrics)
