"""Part 3, recovery: every job of the scale part completed, redis-server killed and a new,
empty one started on the same port; how long until Redis holds every final state again, until
the gateway reads the bus again, until a gateway started then holds them all, and whether the
first gateway ever served less than the final state."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from support.redis_server import RedisServer

from benchmarks.cluster.measure import get_json, wait_jobs
from benchmarks.cluster.processes import (
    Sidecar,
    kill_redis,
    redis_client,
    sidecar_user,
    start_again,
    start_sidecar,
    start_worker,
    until_ready,
    worker_results,
)
from benchmarks.common import peak_rss_mb


async def redis_restart(
    tmp: Path,
    logs: list[Sidecar],
    redis_server: RedisServer,
    gateway: Sidecar,
    job_ids: list[str],
    final: int,
) -> dict[str, Any]:
    """Redis killed and started empty, every job completed: how long until all is back."""
    from sidecar.bus import keys

    polls: list[dict[str, Any]] = []
    stop = asyncio.Event()

    async def poll(url: str, into: list[dict[str, Any]]) -> None:
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                at = time.monotonic()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    jobs = (await get_json(session, f"{url}/api/jobs"))["jobs"]
                    health = await get_json(session, f"{url}/healthz")
                    short = [
                        j
                        for j in jobs
                        if j.get("complete") is not True or j.get("current_step") != final
                    ]
                    into.append(
                        {
                            "at": at,
                            "jobs": len(jobs),
                            "final": len(jobs) - len(short),
                            "bus": health.get("bus"),
                            "lost_nodes": health.get("lost_nodes"),
                            "examples": short[:3],
                        }
                    )
                await asyncio.sleep(0.05)

    # Its user is made beforehand, as an operator would: the restarted Redis has it again from
    # its ACL file, as it has every other sidecar's.
    new_user = await sidecar_user(redis_server, None, "gateway2")
    poller = asyncio.create_task(poll(gateway.url, polls))
    await asyncio.sleep(0.5)
    killed = time.monotonic()
    await kill_redis(redis_server)
    await start_again(redis_server)
    restarted = time.monotonic()
    started = asyncio.create_task(
        start_sidecar(
            tmp, "recovery-new-gateway", redis_server, None, "gateway2", user_url=new_user
        )
    )
    clients = await start_worker(
        {
            "kind": "clients",
            "targets": [["gateway", f"{gateway.ws}/ws/training/{job}", job] for job in job_ids],
        }
    )
    client = redis_client(redis_server)
    nodes = sorted({job.split("-")[0] for job in job_ids})  # "n0-job000": node n0's
    refilled = None
    try:
        deadline = restarted + 60
        while time.monotonic() < deadline:
            async with client.pipeline(transaction=False) as pipe:
                for node in nodes:
                    pipe.hvals(keys.jobs_key(node))
                hashes = await pipe.execute()
            done = 0
            for value in (v for values in hashes for v in values):
                message = json.loads(value) if value else {}
                document = message.get("document", {})
                done += document.get("status") == "completed" and (
                    document.get("current_step") == final
                )
            if done == len(job_ids):
                refilled = time.monotonic() - restarted
                break
            await asyncio.sleep(0.01)
        new_gateway = await started
        logs.append(new_gateway)
        try:
            await wait_jobs(new_gateway.url, len(job_ids), final, timeout=60)
            new_gateway_all = time.monotonic() - restarted
        finally:
            await new_gateway.stop()
        await asyncio.sleep(1)
        await until_ready(clients)
        (records,) = await worker_results([clients], grace=10)
        await asyncio.sleep(1)
    finally:
        stop.set()
        await poller
        await client.aclose()
    before = [p for p in polls if p["at"] < killed]
    after = [p for p in polls if p["at"] >= killed]
    short = [p for p in after if p["final"] < len(job_ids) or p["jobs"] != len(job_ids)]
    bus_up = next(
        (p["at"] - restarted for p in after if p["at"] >= restarted and p["bus"] == "up"), None
    )
    bad_clients = [
        r
        for r in records
        if r["error"]
        or r["backwards"]
        or r["final"] != {"status": "completed", "current_step": final, "complete": True}
    ]
    return {
        "jobs": len(job_ids),
        "redis_down_seconds": restarted - killed,
        "redis_refilled_seconds": refilled,
        "gateway_bus_up_seconds": bus_up,
        "gateway_polls": len(after),
        "gateway_polls_short_of_final": len(short),
        "gateway_all_final_seconds": max(
            (max(0.0, p["at"] - restarted) for p in short), default=0.0
        ),
        "gateway_short_polls": [
            {"since_restart_s": p["at"] - restarted, **{k: v for k, v in p.items() if k != "at"}}
            for p in short[:10]
        ],
        "gateway_all_final_before": all(p["final"] == len(job_ids) for p in before),
        "gateway_bus_down_seen": any(p["bus"] == "down" for p in after),
        "gateway_lost_nodes_seen": sorted({n for p in after for n in p["lost_nodes"] or ()}),
        "new_gateway_all_final_seconds": new_gateway_all,
        "clients": len(records),
        "clients_not_final": len(bad_clients),
        "clients_backwards": sum(r["backwards"] for r in records),
        "clients_examples": [
            {k: r[k] for k in ("job", "final", "close_code", "error")} for r in bad_clients[:5]
        ],
        "gateway_peak_rss_mb": peak_rss_mb(gateway.process.pid),
    }
