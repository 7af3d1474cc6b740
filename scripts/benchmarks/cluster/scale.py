"""Part 2, scale: nodes of many jobs, each written on a phase of its own, and many clients on
one gateway, in load workers; latency, writes lost, every process's CPU, Redis' figures. Part 3
(recovery) follows on the same cluster."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.cluster.measure import (
    command_stats,
    commands_since,
    document,
    fetch_health,
    load_average,
    per_write,
    progress_file,
    redis_figures,
    tally,
    wait_jobs,
)
from benchmarks.cluster.processes import (
    Sidecar,
    kill_redis,
    redis_client,
    start_redis,
    start_sidecar,
    start_worker,
    stop_sidecars,
    until_ready,
    worker_results,
)
from benchmarks.cluster.recovery import redis_restart
from benchmarks.common import CpuMeter, percentiles, write_atomic
from benchmarks.fanout.phases import event_to_send


async def scale_and_recovery(
    tmp: Path,
    logs: list[Sidecar],
    *,
    nodes: int,
    jobs_per_node: int,
    clients: int,
    workers: int,
    rate: float,
    seconds: float,
) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """The scale figures, the recovery's (part 3, on this cluster once every job completed),
    and a message as a node writes it to Redis (for part 4)."""
    from sidecar.bus import keys

    redis_server = await start_redis(tmp / "redis-scale")
    client = redis_client(redis_server)
    empty = await redis_figures(client)
    final = max(2, int(rate * seconds))
    roots = [tmp / f"scale-n{n}" for n in range(nodes)]
    files = {
        f"n{n}-job{j:03d}": progress_file(roots[n], f"n{n}-job{j:03d}")
        for n in range(nodes)
        for j in range(jobs_per_node)
    }
    for file in files.values():
        write_atomic(file, document(0, final))
    node_sidecars = list(
        await asyncio.gather(
            *(
                start_sidecar(tmp, f"scale-node-n{n}", redis_server, roots[n], f"n{n}")
                for n in range(nodes)
            )
        )
    )
    gateway = await start_sidecar(tmp, "scale-gateway", redis_server, None, "gateway")
    sidecars = [*node_sidecars, gateway]
    logs += sidecars
    processes: list[asyncio.subprocess.Process] = []
    try:
        await wait_jobs(gateway.url, len(files))
        job_ids = sorted(files)
        targets = [
            ["gateway", f"{gateway.ws}/ws/training/{job_ids[c % len(job_ids)]}", ""]
            for c in range(clients)
        ]
        for target in targets:
            target[2] = target[1].rsplit("/", 1)[1]
        share = -(-clients // workers)
        for w in range(workers):
            chunk = targets[w * share : (w + 1) * share]
            if chunk:
                processes.append(await start_worker({"kind": "clients", "targets": chunk}))
        await asyncio.gather(*(until_ready(p) for p in processes))
        await asyncio.sleep(1)
        meters = {
            "gateway": CpuMeter(gateway.process.pid),
            "redis": CpuMeter(redis_server.pid),
            **{s.name.removeprefix("scale-"): CpuMeter(s.process.pid) for s in node_sidecars},
            "load clients": [CpuMeter(p.pid) for p in processes],
            "writer": CpuMeter(os.getpid()),
        }
        commands_before = await command_stats(client)
        writes: list[tuple[float, str, int]] = []
        for index, job in enumerate(job_ids):
            offset = index / len(job_ids) / rate  # each job on a phase of its own
            writes += [(offset + (step - 1) / rate, job, step) for step in range(1, final + 1)]
        writes.sort()
        written: dict[str, dict[int, float]] = {job: {} for job in job_ids}
        cpu: dict[str, float] = {}
        redis_at_scale: dict[str, Any] = {}
        late: list[float] = []
        sample_message = None
        load = [load_average()]
        began = time.monotonic()
        for due, job, step in writes:
            if step == final and not cpu:  # the clients leave at the final state
                steady = time.monotonic() - began
                for name, meter in meters.items():
                    if isinstance(meter, list):
                        cpu[name] = sum(m.percent() for m in meter)
                    else:
                        cpu[name] = meter.percent()
                redis_at_scale = await redis_figures(client)
                commands_after = await command_stats(client)
                sample_message = await client.hget(keys.jobs_key(job.split("-")[0]), job)
            wait = began + due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            late.append(1000 * (time.monotonic() - began - due))
            written[job][step] = write_atomic(files[job], document(step, final))
        writing = time.monotonic() - began
        load.append(load_average())
        records = [r for batch in await worker_results(processes, grace=15) for r in batch]
        health = await fetch_health(gateway.url)
        inside = await event_to_send(gateway)
        await wait_jobs(gateway.url, len(files), final, timeout=30)
        recovery = await redis_restart(tmp, logs, redis_server, gateway, job_ids, final)
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
        await stop_sidecars(sidecars)
        await client.aclose()
        await kill_redis(redis_server)

    samples: list[float] = []
    lost = coalesced = 0
    for r in records:
        delays = per_write(written[r["job"]], r["got"])
        samples += delays.values()
        lost += len(written[r["job"]]) - len(delays)
        coalesced += len(delays) - len({step for _, step in r["got"]} & delays.keys())
    final_lost = [
        r
        for r in records
        if r["final"] != {"status": "completed", "current_step": final, "complete": True}
    ]
    changes = len(writes) * steady / writing
    scale = {
        "nodes": nodes,
        "jobs": len(files),
        "clients": clients,
        "load_processes": len(processes),
        "rate_hz": rate,
        "seconds": seconds,
        "writes": len(writes),
        "writes_per_second": len(writes) / writing,
        "writer_late_ms": percentiles(late),
        "load_average": load,
        "latency_ms": percentiles(samples),
        "deliveries_expected": sum(len(written[r["job"]]) for r in records),
        "writes_lost": lost,
        "writes_coalesced": coalesced,
        "final_states_lost": len(final_lost),
        "final_states_lost_examples": [
            {k: r[k] for k in ("job", "final", "close_code", "error")} for r in final_lost[:5]
        ],
        "client_errors": sum(bool(r["error"]) for r in records),
        "close_codes": tally(r["close_code"] for r in records),
        "states_backwards": sum(r["backwards"] for r in records),
        "seq_errors": sum(r["seq_errors"] for r in records),
        "cpu_percent": cpu,
        "cpu_seconds_measured": steady,
        "gateway_peak_rss_mb": None,
        "gateway_event_to_send": inside,
        "gateway_health": health,
        "redis": redis_at_scale,
        "redis_empty": empty,
        "redis_commands_per_change": commands_since(commands_before, commands_after, changes),
        "redis_cpu_us_per_change": 1e6 * cpu["redis"] / 100 * steady / max(1.0, changes),
    }
    scale["gateway_peak_rss_mb"] = recovery.pop("gateway_peak_rss_mb")
    return scale, recovery, sample_message or b""
