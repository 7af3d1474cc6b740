"""Cluster mode: Redis credentials, what Redis holds, and malformed messages on the bus."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.bus.defaults import STREAM_LENGTH
from tests.helpers import spawn_sidecar, stop_sidecar, wait_for
from tests.redis_server import RedisServer
from tests.sidecar.bus.cluster import CHANGES, PREFIX, Cluster, has_jobs, job_field, write_job

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


async def test_a_malformed_message_is_logged_and_the_bus_goes_on(cluster: Cluster) -> None:
    root = cluster.root("node-a")
    write_job(root, "job-a", current_step=1)
    await cluster.start("node-a")
    gateway = await cluster.start(None)
    await wait_for(lambda: has_jobs(cluster, gateway, {"job-a": "node-a"}), what="job-a")
    redis = cluster.redis.client()
    bad = b'{"kind":"state","node":"x","job_id":"j","epoch":"e","seq":1,"document":["x"],'
    bad += b'"modified_at":1,"has_file":true}'
    redis.xadd("{progress-sidecar}:changes", {"m": bad})
    redis.xadd("{progress-sidecar}:changes", {"m": b"not json"})
    redis.set("{progress-sidecar}:job:x/j", bad)  # and for a gateway that starts now
    write_job(root, "job-a", current_step=2)
    await wait_for(lambda: job_field(cluster, gateway, "job-a", "current_step", 2), what="2")
    late = await cluster.start(None)
    assert (await cluster.jobs(late))["job-a"]["current_step"] == 2
    assert (await cluster.get(gateway, "/healthz"))["bus"] == "up"
    log = await cluster.stop(gateway)
    assert "ignored a message that is not this protocol's" in log and "Traceback" not in log
