"""The demo on a cluster of this machine: a redis-server of its own, two node sidecars (one job
on each, each on its own jobs root) and a gateway that serves the jobs of both."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

import aiohttp
from demo_folders import make_job_folders, remove_empty
from demo_follow import chosen_port, follow_then_serve, shown
from demo_interrupts import Interrupts
from demo_processes import (
    START_TIMEOUT,
    Process,
    relay,
    start_jobs,
    start_redis,
    start_sidecar,
    stop,
    stop_redis,
)
from support.acl_users import acl_user
from support.redis_server import RedisServer

NODES = ("node-a", "node-b")
"""The cluster's nodes: the first runs the job that completes, the second the one that fails."""
GATEWAY = "gateway"


async def wait_for_jobs(url: str, job_ids: set[str]) -> None:
    """Until the gateway lists ``job_ids`` (the nodes publish their jobs within moments)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, ValueError):
                async with session.get(f"{url}/api/jobs") as response:
                    listed = {job["job_id"] for job in (await response.json())["jobs"]}
                if job_ids <= listed:
                    return
            if loop.time() > deadline:
                raise SystemExit(
                    f"the gateway did not list the nodes' jobs within {START_TIMEOUT} s"
                )
            await asyncio.sleep(0.05)


async def cluster_demo(
    interrupts: Interrupts,
    folder: Path,
    port: int,
    steps: int,
    once: bool,
    stamp: str,
    redis_server: str,
) -> int:
    """The demo's exit status: 0 when the jobs ended as they should."""
    good, bad = f"demo-{stamp}-ok", f"demo-{stamp}-fails"
    roots = {node: folder / node for node in NODES}
    (good_node, good_root), (bad_node, bad_root) = roots.items()
    # Stopped in the reverse order: the trainers, the nodes, the gateway, Redis.
    redis: RedisServer | None = None
    gateway: list[Process] = []
    nodes: list[Process] = []
    jobs: list[Process] = []
    tasks: list[asyncio.Task[None]] = []
    created: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="progress-sidecar-demo-redis-") as redis_dir:
        try:
            redis = await start_redis(redis_server, Path(redis_dir))
            # A Redis user per node, confined to its own keys, and one for the gateway.
            users = {node: await acl_user(redis, node, "node", node) for node in NODES}
            gateway_bus = ("--redis", await acl_user(redis, GATEWAY, "gateway"))
            # The gateway before anything is written: on a busy port the demo leaves nothing.
            process, url = await start_sidecar(
                port, *gateway_bus, "--node", GATEWAY, name="the gateway"
            )
            gateway.append(process)
            created = make_job_folders([good_root / good, bad_root / bad])
            node_urls: dict[str, str] = {}
            for node, root in roots.items():
                bus = ("--redis", users[node])
                process, node_urls[node] = await start_sidecar(
                    0, "--root", str(root), *bus, "--node", node, name=node
                )
                nodes.append(process)
            for name, process in zip((GATEWAY, *NODES), (*gateway, *nodes), strict=True):
                assert process.stderr is not None
                tasks.append(asyncio.create_task(relay(process.stderr, f"[{name}] ")))
            print(
                f"gateway at {url}{chosen_port(url, port)}, serving the jobs of "
                f"{' and '.join(NODES)}"
            )
            print(f"  dashboard:     {url}/")
            for node, root in roots.items():
                print(f"  {node + ':':<15}{node_urls[node]}/  (watches {shown(root)})")
            print(
                f"  redis:         redis://127.0.0.1:{redis.port}/0  (the demo's own, no "
                "persistence; an ACL user per node and one for the gateway)"
            )
            await wait_for_jobs(url, {good, bad})
            await start_jobs((good_root, good), (bad_root, bad), steps, jobs)
            created = []  # the trainers write there now
            print(
                f"two training jobs: {good} on {good_node} (runs to the end) and {bad} on "
                f"{bad_node} (fails at a third)"
            )
            folders = f"{shown(good_root)}, {shown(bad_root)}"
            serving = f"the cluster keeps serving, the gateway at {url}"
            return await follow_then_serve(url, good, bad, jobs, folders, serving, once, interrupts)
        finally:
            interrupts.stopping()
            for tier in (jobs, nodes, gateway):
                await stop(tier)
            if redis is not None:
                await stop_redis(redis)
            for task in tasks:
                await task
            remove_empty(created)  # the demo stopped before any job started
