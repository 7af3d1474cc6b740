"""A cluster of real sidecar processes over a real Redis, and predicates on what they serve."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.helpers import StreamClient, spawn_sidecar, stop_sidecar, write_atomic
from tests.redis_server import RedisServer

NODE_TIMEOUT = "1.5"
PREFIX = "{progress-sidecar}:"


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


@contextlib.asynccontextmanager
async def running_cluster(redis: RedisServer, tmp_path: Path) -> AsyncIterator[Cluster]:
    """A cluster on ``redis``; every sidecar still running is stopped at the end."""
    async with aiohttp.ClientSession() as session:
        cluster = Cluster(redis, tmp_path, session)
        try:
            yield cluster
        finally:
            for sidecar in list(cluster.sidecars):
                await cluster.stop(sidecar)


def write_job(root: Path, job_id: str, **fields: Any) -> None:
    write_atomic(root / job_id / "progress.json", {"status": "running", **fields})


async def has_jobs(cluster: Cluster, sidecar: Sidecar, expected: dict[str, str]) -> bool:
    jobs = await cluster.jobs(sidecar)
    return all(job in jobs and jobs[job]["node"] == node for job, node in expected.items())


async def job_field(cluster: Cluster, sidecar: Sidecar, job: str, key: str, value: Any) -> bool:
    return (await cluster.jobs(sidecar)).get(job, {}).get(key) == value


async def absent(cluster: Cluster, sidecar: Sidecar, job_id: str) -> bool:
    return job_id not in await cluster.jobs(sidecar)
