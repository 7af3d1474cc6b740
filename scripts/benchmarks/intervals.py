"""Latency by write interval: a trainer that writes every 0.05, 0.5, 2, 5 or 30 s.

How late a write arrives depends on how long the watcher had been quiet before it (its step
grows at rest), so each interval runs on sidecars of its own, one job each, written at that
interval on a random phase and followed by one client: the sidecars' samples are independent,
and a slow interval gathers enough of them in minutes. Two settings run side by side, on
sidecars of their own: the default (a 3-ms warm step for a minute after each event) and
``--watch-warm-seconds 0`` (hot for 2 s, then the 25-ms step at rest: the schedule before).
The first write of each sidecar, after its quiet start, is left out: the samples are the steady
state at that interval. CPU: each sidecar's, over the stretch, as % of one core.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CpuMeter,
    Server,
    latencies,
    percentiles,
    start_sidecar,
    table,
    verdict,
    write_atomic,
)
from benchmarks.latency import follow_ws

SETTINGS: dict[str, tuple[str, ...]] = {
    "warm (default)": (),
    "no warm step": ("--watch-warm-seconds", "0"),
}
PLAN: tuple[tuple[float, int, float], ...] = (
    # (interval s, sidecars per setting, seconds)
    (0.05, 1, 15),
    (0.5, 2, 30),
    (2.0, 6, 40),
    (5.0, 8, 60),
    (30.0, 12, 150),
)
QUIET_START = 3.0
"""Seconds each sidecar rests before its first write (its watcher goes cold)."""


async def _job(
    sidecar: Server, file: Path, interval: float, seconds: float, stop: asyncio.Event
) -> tuple[list[float], float]:
    """Write one job every ``interval`` s on a random phase; its latencies (the first write
    left out) and its sidecar's CPU over the stretch."""
    got: list[tuple[float, int]] = []
    follower = asyncio.create_task(follow_ws(f"{sidecar.ws}/ws/training/bench", got, stop))
    await asyncio.sleep(QUIET_START + random.uniform(0, interval))
    meter = CpuMeter(sidecar.process.pid)
    written: dict[int, float] = {}
    began = time.monotonic()
    step = 0
    while time.monotonic() - began < seconds:
        step += 1
        written[step] = write_atomic(file, {"job_id": "bench", "status": "running", "step": step})
        await asyncio.sleep(max(0.0, began + step * interval - time.monotonic()))
    cpu = meter.percent()
    await asyncio.sleep(0.5)
    stop.set()
    await follower
    samples = latencies(written, got)
    return samples[1:], cpu


async def _interval(interval: float, sidecars: int, seconds: float) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        servers: dict[str, list[tuple[Server, Path]]] = {name: [] for name in SETTINGS}
        try:
            for name, flags in SETTINGS.items():
                for i in range(sidecars):
                    root = Path(tmp) / f"{name[:4]}-{i}"
                    file = root / "bench" / "progress.json"
                    file.parent.mkdir(parents=True)
                    write_atomic(file, {"job_id": "bench", "status": "running", "step": 0})
                    servers[name].append((await start_sidecar(root, *flags), file))
            runs = {
                name: [
                    asyncio.create_task(_job(server, file, interval, seconds, asyncio.Event()))
                    for server, file in pairs
                ]
                for name, pairs in servers.items()
            }
            for name, tasks in runs.items():
                done = await asyncio.gather(*tasks)
                samples = [s for job_samples, _ in done for s in job_samples]
                figures[name] = {
                    "latency_ms": percentiles(samples),
                    "cpu_percent_median": statistics.median(cpu for _, cpu in done),
                    "samples_ms": samples,
                }
        finally:
            for pairs in servers.values():
                for server, _ in pairs:
                    await server.stop()
    return {"interval_s": interval, "sidecars_per_setting": sidecars, "seconds": seconds, **figures}


async def run(*, plan: tuple[tuple[float, int, float], ...] = PLAN) -> dict[str, Any]:
    results = [await _interval(interval, n, seconds) for interval, n, seconds in plan]
    default = "warm (default)"
    return {
        "scenario": "intervals",
        "settings": {name: list(flags) for name, flags in SETTINGS.items()},
        "quiet_start_s": QUIET_START,
        "results": results,
        "targets": {
            f"p99 <= 10 ms, a write every {r['interval_s']:g} s": verdict(
                r[default]["latency_ms"]["p99"], 10
            )
            for r in results
        },
    }


def report(result: dict[str, Any]) -> str:
    rows = []
    for r in result["results"]:
        for name in SETTINGS:
            f = r[name]["latency_ms"]
            rows.append(
                [
                    f"every {r['interval_s']:g} s, {name}",
                    f["n"],
                    f["p50"],
                    f["p99"],
                    f["max"],
                    r[name]["cpu_percent_median"],
                ]
            )
    lines = [table(["write interval (ms)", "n", "p50", "p99", "max", "CPU %"], rows)]
    lines += [f"target {t}: {v}" for t, v in result["targets"].items()]
    return "\n".join(lines)
