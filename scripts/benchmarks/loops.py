"""Event loops: the sidecar on asyncio's loop and on uvloop, side by side (latency, fan-out, idle).

Latency: both sidecars follow the same job, written at 20 Hz, at once. Fan-out: the fan-out
scenario's phases (independent trainers at 2 and 10 Hz, the lockstep burst at 2 Hz), each loop
in turn, phase by phase. Idle: both sidecars watch the same 1,000 jobs at rest, in the same
window. The sidecar runs on asyncio's loop; this trial runs it on uvloop by installing uvloop's
policy before the sidecar's own ``main`` (docs/benchmarks.md has the figures and the choice).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import fanout
from benchmarks.common import (
    CpuMeter,
    latencies,
    percentiles,
    start_sidecar,
    table,
    write_atomic,
    write_jobs_at_rest,
)
from benchmarks.latency import follow_ws

LOOPS = ("asyncio", "uvloop")
FANOUT_PHASES = tuple(
    p for p in fanout.PHASES if p.name in ("independent 2 Hz", "independent 10 Hz", "lockstep 2 Hz")
)


async def _latency(seconds: float, rate: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "bench" / "progress.json"
        file.parent.mkdir()
        write_atomic(file, {"status": "running", "step": 0})
        servers = {loop: await start_sidecar(Path(tmp), loop=loop) for loop in LOOPS}
        try:
            stop = asyncio.Event()
            got: dict[str, list[tuple[float, int]]] = {loop: [] for loop in LOOPS}
            tasks = [
                asyncio.create_task(follow_ws(f"{s.ws}/ws/training/bench", got[loop], stop))
                for loop, s in servers.items()
            ]
            await asyncio.sleep(1)
            written: dict[int, float] = {}
            began = time.monotonic()
            for i in range(int(seconds * rate)):
                written[i + 1] = write_atomic(file, {"status": "running", "step": i + 1})
                await asyncio.sleep(max(0.0, began + (i + 1) / rate - time.monotonic()))
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*tasks)
        finally:
            for server in servers.values():
                await server.stop()
    return {loop: percentiles(latencies(written, got[loop])) for loop in LOOPS}


async def _idle(seconds: float, jobs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_jobs_at_rest(root, jobs)
        servers = {loop: await start_sidecar(root, loop=loop) for loop in LOOPS}
        try:
            await asyncio.sleep(5)
            meters = {loop: CpuMeter(s.process.pid) for loop, s in servers.items()}
            await asyncio.sleep(seconds)
            return {loop: meter.percent() for loop, meter in meters.items()}
        finally:
            for server in servers.values():
                await server.stop()


async def run(
    *, latency_seconds: float = 30, fanout_seconds: float = 15, idle_seconds: float = 30,
    jobs: int = fanout.JOBS, clients: int = fanout.CLIENTS,
) -> dict[str, Any]:  # fmt: skip
    latency = await _latency(latency_seconds, 20)
    fan: dict[str, dict[str, Any]] = {loop: {} for loop in LOOPS}
    for phase in FANOUT_PHASES:
        for loop in LOOPS:
            got = await fanout.run_phases(
                (phase,), seconds=fanout_seconds, jobs=jobs, clients=clients, loop=loop,
            )  # fmt: skip
            fan[loop][phase.name] = got[phase.name]
    idle = await _idle(idle_seconds, 1000)
    ratios = {
        "latency p50, asyncio / uvloop": latency["asyncio"]["p50"] / latency["uvloop"]["p50"],
        "latency p99, asyncio / uvloop": latency["asyncio"]["p99"] / latency["uvloop"]["p99"],
    }
    for phase in FANOUT_PHASES:
        a, u = fan["asyncio"][phase.name], fan["uvloop"][phase.name]
        ratios[f"fan-out {phase.name} p99, asyncio / uvloop"] = (
            a["latency_ms"]["p99"] / u["latency_ms"]["p99"]
        )
        ratios[f"fan-out {phase.name} sidecar CPU, asyncio / uvloop"] = (
            a["server_cpu_percent"] / u["server_cpu_percent"]
        )
    ratios["idle CPU, asyncio / uvloop"] = idle["asyncio"] / idle["uvloop"]
    return {
        "scenario": "event loops",
        "settings": {
            "latency_seconds": latency_seconds,
            "fanout_seconds": fanout_seconds,
            "idle_seconds": idle_seconds,
            "jobs": jobs,
            "clients": clients,
        },
        "latency_ms": latency,
        "fanout": fan,
        "idle_cpu_percent": idle,
        "ratios": ratios,
        "targets": {},
    }


def report(result: dict[str, Any]) -> str:
    rows = []
    for loop in LOOPS:
        lat = result["latency_ms"][loop]
        rows.append(
            [f"latency, 1 job at 20 Hz: {loop}", lat["n"], lat["p50"], lat["p99"], lat["max"], "-"]
        )
        for name, p in result["fanout"][loop].items():
            f = p["latency_ms"]
            rows.append(
                [
                    f"fan-out {name}: {loop}",
                    f["n"],
                    f["p50"],
                    f["p99"],
                    f["max"],
                    p["server_cpu_percent"],
                ]
            )
        rows.append(
            [f"idle, 1,000 jobs: {loop}", "-", "-", "-", "-", result["idle_cpu_percent"][loop]]
        )
    lines = [table(["event loop trial", "n", "p50 ms", "p99 ms", "max ms", "sidecar CPU %"], rows)]  # fmt: skip
    lines += [f"{name}: x{ratio:.2f}" for name, ratio in result["ratios"].items()]
    return "\n".join(lines)
