"""One fan-out phase on a server of its own: its jobs, its load processes and its writer, and
the figures of every delivery."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import (
    BENCH,
    Server,
    cpu_seconds,
    latencies_by_step,
    peak_rss_mb,
    percentiles,
    start_legacy,
    start_sidecar,
    write_atomic,
)

JOBS = 100
CLIENTS = 1000
LOADS = 2


@dataclass(frozen=True)
class Phase:
    name: str
    shape: str  # "independent" or "lockstep"
    rate: float
    legacy: bool = False


PHASES = (
    Phase("independent 2 Hz", "independent", 2.0),
    Phase("independent 10 Hz", "independent", 10.0),
    Phase("lockstep 2 Hz", "lockstep", 2.0),
    Phase("lockstep 10 Hz", "lockstep", 10.0),
    Phase("seed's 2-s loop, independent 2 Hz", "independent", 2.0, legacy=True),
)


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH), *args, stdout=asyncio.subprocess.PIPE
    )


async def _last_json(process: asyncio.subprocess.Process, timeout: float) -> Any:
    assert process.stdout is not None
    out = await asyncio.wait_for(process.stdout.read(), timeout)
    await process.wait()
    return json.loads(out.decode().strip().splitlines()[-1])


async def event_to_send(server: Server) -> dict[str, float] | None:
    """The sidecar's own share: its histogram of file event to send, as mean and fractions."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{server.url}/metrics") as response,
        ):
            if response.status != 200:
                return None
            text = await response.text()
    except aiohttp.ClientError:
        return None
    buckets, total, count = {}, 0.0, 0.0
    for line in text.splitlines():
        if line.startswith("sidecar_event_to_send_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets[le] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("sidecar_event_to_send_seconds_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("sidecar_event_to_send_seconds_count"):
            count = float(line.rsplit(" ", 1)[1])
    if not count:
        return None
    return {
        "sends": count,
        "mean_ms": 1000 * total / count,
        "under_5_ms": buckets.get("0.005", 0) / count,
        "under_10_ms": buckets.get("0.01", 0) / count,
        "under_20_ms": buckets.get("0.02", 0) / count,
        "under_50_ms": buckets.get("0.05", 0) / count,
        "under_100_ms": buckets.get("0.1", 0) / count,
    }


async def _phase(
    server: Server, root: Path, prefix: str, phase: Phase, *, seconds: float, jobs: int,
    clients: int,
) -> dict[str, Any]:  # fmt: skip
    final_step = max(2, int(phase.rate * seconds))
    files = [root / f"{prefix}{j}" / "progress.json" for j in range(jobs)]
    for file in files:
        file.parent.mkdir()
        write_atomic(file, {"status": "running", "step": 0})
    await asyncio.sleep(0.5)  # the server sees the new jobs
    run_for = final_step / phase.rate + 1
    deadline = time.time() + 120 + run_for
    loads = []
    for w in range(LOADS):
        mine = [files[i % jobs].parent.name for i in range(w, clients, LOADS)]
        spec = {"base": server.ws, "jobs": mine, "final_step": final_step, "deadline": deadline}
        loads.append(await _spawn("--fanout-load", json.dumps(spec)))
    for process in loads:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 120)
        assert line.strip() == b"ready", line
    spec = {"files": [str(f) for f in files], "shape": phase.shape, "rate": phase.rate}
    server_cpu, began = cpu_seconds(server.process.pid), time.monotonic()
    writing = await _spawn("--fanout-writer", json.dumps({**spec, "ticks": final_step}))
    written = await _last_json(writing, run_for + 60)
    results = [await _last_json(p, deadline - time.time() + 30) for p in loads]
    wall = time.monotonic() - began
    server_cpu = cpu_seconds(server.process.pid) - server_cpu
    ordinary, terminal, close_after = [], [], []
    lost = errors = bad_close = 0
    for result in results:
        for client in result["clients"]:
            if client.get("error"):
                errors += 1
                continue
            for step, ms in latencies_by_step(written["written"][client["job"]], client["got"]):
                (terminal if step == final_step else ordinary).append(ms)
            lost += not client["final"]
            if client["close_ms"] is not None:
                close_after.append(client["close_ms"])
            bad_close += client["close"] != 1000
    return {
        "shape": phase.shape,
        "rate_hz": phase.rate,
        "server": "seed's 2-s loop" if phase.legacy else "sidecar",
        "ticks": final_step,
        "latency_ms": percentiles(ordinary + terminal),
        "ordinary_tick_ms": percentiles(ordinary),
        "terminal_tick_ms": percentiles(terminal),
        # From the final state to the server's close, as the client saw them (closes are paced).
        "close_after_final_ms": percentiles(close_after),
        "server_event_to_send": None if phase.legacy else await event_to_send(server),
        "final_lost": lost,
        "errors": errors,
        "close_not_1000": bad_close,
        "window_seconds": wall,
        "server_cpu_percent": 100 * server_cpu / wall,
        "load_cpu_percent": 100 * sum(r["cpu_seconds"] for r in results) / wall,
        "writer_cpu_percent": 100 * written["cpu_seconds"] / wall,
        "writer_late_ms": written["late_ms"],
        "server_peak_rss_mb": peak_rss_mb(server.process.pid),
    }


async def run_phases(
    phases: tuple[Phase, ...], *, seconds: float, jobs: int, clients: int, loop: str = "asyncio",
) -> dict[str, Any]:  # fmt: skip
    """Each phase's figures, by name, each on a server of its own."""
    import tempfile

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i, phase in enumerate(phases):
            server = await (start_legacy(root) if phase.legacy else start_sidecar(root, loop=loop))
            try:
                results[phase.name] = await _phase(
                    server, root, f"p{i}-job", phase, seconds=seconds, jobs=jobs, clients=clients
                )
            finally:
                await server.stop()
    return results
