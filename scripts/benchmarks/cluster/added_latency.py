"""Part 1, added latency: Redis, node A, node B and a gateway; one job on A written at each
rate in turn, a client of it on A (direct), on B (a replica) and on the gateway."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from benchmarks.cluster.measure import (
    document,
    load_average,
    per_write,
    progress_file,
    wait_jobs,
)
from benchmarks.cluster.processes import (
    Sidecar,
    kill_redis,
    start_redis,
    start_sidecar,
    start_worker,
    stop_sidecars,
    until_ready,
    worker_results,
)
from benchmarks.common import percentiles, write_atomic


async def _write_job(file: Path, rate: float, seconds: float) -> dict[int, float]:
    final = max(2, int(rate * seconds))
    written: dict[int, float] = {}
    began = time.monotonic()
    for step in range(1, final + 1):
        written[step] = write_atomic(file, document(step, final))
        await asyncio.sleep(max(0.0, began + step / rate - time.monotonic()))
    return written


async def added_latency(
    tmp: Path, logs: list[Sidecar], rates: list[tuple[float, float]]
) -> dict[str, Any]:
    """Each rate's write-to-client delays on A, B and the gateway, and what the gateway adds."""
    redis_server = await start_redis(tmp / "redis-latency")
    roots = {node: tmp / f"latency-{node}" for node in ("a", "b")}
    jobs = {f"lat{rate:g}hz": (rate, seconds) for rate, seconds in rates}
    for job in jobs:
        write_atomic(progress_file(roots["a"], job), document(0, 1_000_000))
    write_atomic(progress_file(roots["b"], "idle-on-b"), document(0, 1_000_000))
    sidecars = list(
        await asyncio.gather(
            start_sidecar(tmp, "latency-node-a", redis_server, roots["a"], "a"),
            start_sidecar(tmp, "latency-node-b", redis_server, roots["b"], "b"),
            start_sidecar(tmp, "latency-gateway", redis_server, None, "gateway"),
        )
    )
    logs += sidecars
    labels = {"node A (direct)": sidecars[0], "node B (replica)": sidecars[1]}
    labels["gateway"] = sidecars[2]
    try:
        for sidecar in sidecars:
            await wait_jobs(sidecar.url, len(jobs) + 1)
        targets = [
            [label, f"{s.ws}/ws/training/{job}", job] for job in jobs for label, s in labels.items()
        ]
        process = await start_worker({"kind": "clients", "targets": targets})
        await until_ready(process)
        await asyncio.sleep(1)
        written = {}
        load = [load_average()]
        for job, (rate, seconds) in jobs.items():
            written[job] = await _write_job(progress_file(roots["a"], job), rate, seconds)
        (records,) = await worker_results([process], grace=10)
        load.append(load_average())
    finally:
        await stop_sidecars(sidecars)
        await kill_redis(redis_server)
    by_rate: dict[str, Any] = {}
    for job, (rate, seconds) in jobs.items():
        delays = {r["label"]: per_write(written[job], r["got"]) for r in records if r["job"] == job}
        figures = {label: percentiles(list(d.values())) for label, d in delays.items()}
        node, gateway = delays["node A (direct)"], delays["gateway"]
        pairwise = [gateway[s] - node[s] for s in node.keys() & gateway.keys()]
        by_rate[f"{rate:g} Hz"] = {
            "rate_hz": rate,
            "seconds": seconds,
            "writes": len(written[job]),
            "results_ms": figures,
            "added_ms": {
                q: figures["gateway"][q] - figures["node A (direct)"][q] for q in ("p50", "p99")
            },
            "added_per_write_ms": percentiles(pairwise),
            "missed": {
                r["label"]: len(written[job]) - len(delays[r["label"]])
                for r in records
                if r["job"] == job
            },
            "samples_ms": {label: list(d.values()) for label, d in delays.items()},
            "client_errors": [r["error"] for r in records if r["job"] == job and r["error"]],
        }
    return {"rates": by_rate, "load_average": load}
