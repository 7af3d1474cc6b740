"""Part 5, crowds on the gateway: dashboards (clients of the gateway's ``/ws/jobs``, the jobs
split over the nodes, each rewritten once a second) and viewers (a storm of clients of
``/ws/training/{job}`` on the gateway), each on a cluster of its own, measured by the
dashboards and viewers scenarios' own code (picows load processes, the writer in its own)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from benchmarks.cluster.measure import wait_jobs
from benchmarks.cluster.processes import (
    Sidecar,
    kill_redis,
    start_redis,
    start_sidecar,
    stop_sidecars,
)
from benchmarks.dashboards.measure import measure_dashboards
from benchmarks.dashboards.writer import make_jobs
from benchmarks.viewers.measure import measure_viewers


async def gateway_crowds(
    tmp: Path,
    logs: list[Sidecar],
    *,
    nodes: int,
    dashboard_jobs: int,
    dashboards: int,
    viewer_jobs: int,
    per_job: int,
    seconds: float,
) -> dict[str, Any]:
    """The dashboards' figures and the viewers', each measured on the gateway of a fresh
    cluster (Redis, ``nodes`` nodes, a gateway)."""
    out: dict[str, Any] = {}
    for part, jobs in (("dashboards", dashboard_jobs), ("viewers", viewer_jobs)):
        redis_server = await start_redis(tmp / f"redis-crowd-{part}")
        roots = [tmp / f"crowd-{part}-n{n}" for n in range(nodes)]
        job_list = [(roots[j % nodes], f"n{j % nodes}-job{j:04d}") for j in range(jobs)]
        make_jobs(job_list)
        sidecars = list(
            await asyncio.gather(
                *(
                    start_sidecar(tmp, f"crowd-{part}-node-n{n}", redis_server, roots[n], f"n{n}")
                    for n in range(nodes)
                )
            )
        )
        gateway = await start_sidecar(tmp, f"crowd-{part}-gateway", redis_server, None, "gateway")
        sidecars.append(gateway)
        logs += sidecars
        pids = {"gateway": gateway.process.pid, "redis": redis_server.pid}
        pids.update({s.name.removeprefix(f"crowd-{part}-"): s.process.pid for s in sidecars[:-1]})
        try:
            await wait_jobs(gateway.url, jobs)
            if part == "dashboards":
                figures = await measure_dashboards(
                    gateway.url, job_list, dashboards=dashboards, pids=pids, window=seconds
                )
            else:
                figures = await measure_viewers(
                    gateway.url, job_list, per_job=per_job, pids=pids, window=seconds
                )
        finally:
            await stop_sidecars(sidecars)
            await kill_redis(redis_server)
        out[part] = {"nodes": nodes, **figures}
    return out
