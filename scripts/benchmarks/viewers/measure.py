"""One viewers phase against a running server (a sidecar, or a cluster's gateway): the writer
rewriting every job once a second, the storm (every client of ``/ws/training/{job}`` connecting
at once, in load processes of their own), a measurement window, and every job's end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import CpuMeter, latencies_by_step, peak_rss_mb, percentiles
from benchmarks.dashboards.lag import in_window
from benchmarks.dashboards.server import gc_increase, gc_pauses
from benchmarks.dashboards.workers import expect, kill_all, spawn, tell
from benchmarks.dashboards.writer import start_writer, stop_writer
from benchmarks.viewers.kernel import counters_between, read_counters
from benchmarks.viewers.load import STORM_TIMEOUT
from benchmarks.viewers.server_side import event_to_send, share_under

LOADS = 4
END_GRACE = 30.0
"""Seconds for every client to hold its job's final state and be closed, after the last write."""


async def measure_viewers(
    url: str,
    jobs: Sequence[tuple[Path, str]],
    *,
    per_job: int,
    pids: Mapping[str, int],
    window: float,
    loads: int = LOADS,
) -> dict[str, Any]:
    """Storm ``url`` with ``per_job`` clients of each job of ``jobs`` (root, job id) while they
    are rewritten, measure ``window`` seconds, then complete every job.

    Args:
        url: the server's http:// base URL.
        jobs: the jobs to write, each in its jobs root (the server must list them already).
        per_job: clients of each job, spread over ``loads`` processes.
        pids: the processes whose CPU and peak RSS are reported, by name.
        window: the measurement window, in seconds.
        loads: load processes.
    """
    writer = await start_writer(jobs)
    processes: list[asyncio.subprocess.Process] = []
    ids = [job for _root, job in jobs]
    try:
        for w in range(loads):
            share = len(range(w, per_job, loads))
            if share:
                spec = {"base": url.replace("http", "ws", 1), "jobs": ids, "per_job": share}
                processes.append(await spawn("--viewers-load", spec))
        for process in processes:
            await expect(process, "ready", 60)
        await asyncio.sleep(1.0)  # the writes flow before the storm
        gc_before = await gc_pauses(url)
        kernel_before = read_counters()
        storm_meters = {name: CpuMeter(pid) for name, pid in pids.items()}
        storm_began = time.time()
        await tell(processes, "go")
        connected = [
            json.loads(await expect(p, "connected", STORM_TIMEOUT + 60)) for p in processes
        ]
        kernel = counters_between(kernel_before, read_counters())
        storm_cpu = {name: meter.percent() for name, meter in storm_meters.items()}
        meters = {name: CpuMeter(pid) for name, pid in pids.items()}
        load_meters = [CpuMeter(p.pid) for p in processes]
        writer_meter = CpuMeter(writer.pid)
        gc_stormed = await gc_pauses(url)
        sends_before = await event_to_send(url)
        began = time.time()
        await asyncio.sleep(window)
        gc_window = await gc_pauses(url)
        sends = share_under(sends_before, await event_to_send(url))
        cpu = {name: meter.percent() for name, meter in meters.items()}
        cpu["load"] = sum(m.percent() for m in load_meters)
        cpu["writer"] = writer_meter.percent()
        written = await stop_writer(writer, finish=True)
        results = await _results(processes, END_GRACE)
    finally:
        kill_all([*processes, writer])
    storm = _storm(connected, results, storm_began, kernel, storm_cpu)
    return {
        "jobs": len(ids),
        "clients": len(ids) * per_job,
        "storm": storm,
        **_window(written, results, began),
        "window_seconds": window,
        "server_event_to_send": sends,
        "gc": {
            "storm": gc_increase(gc_before, gc_stormed),
            "window": gc_increase(gc_stormed, gc_window),
        },
        "cpu_percent": cpu,
        "peak_rss_mb": {name: peak_rss_mb(pid) for name, pid in pids.items()},
        "writer": {
            "writes_per_second": written["writes"] / written["seconds"],
            "late_ms": written["late_ms"],
        },
    }


async def _results(processes: list[asyncio.subprocess.Process], grace: float) -> list[Any]:
    """Each load's JSON line; those not done within ``grace`` seconds are told to stop."""
    reads = [asyncio.ensure_future(p.stdout.read()) for p in processes if p.stdout is not None]
    await asyncio.wait(reads, timeout=grace)
    if not all(read.done() for read in reads):
        await tell([p for p, r in zip(processes, reads, strict=True) if not r.done()], "stop")
    outs = await asyncio.wait_for(asyncio.gather(*reads), 120)
    for process in processes:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 10)
    return [json.loads(out.decode().strip().splitlines()[-1]) for out in outs]


def _storm(
    connected: list[dict[str, Any]],
    results: list[dict[str, Any]],
    began: float,
    kernel: dict[str, int],
    cpu: dict[str, float],
) -> dict[str, Any]:
    clients = [c for r in results for c in r["clients"]]
    held = sum(c["held"] for c in connected)
    every = held == len(clients) and all(c["last"] is not None for c in connected)
    errors = [c["error"] for c in clients if c["error"]]
    return {
        "all_snapshots_seconds": max(c["last"] for c in connected) - began if every else None,
        "snapshots_held": held,
        "handshake_ms": percentiles([c["handshake_ms"] for c in clients if "handshake_ms" in c]),
        "failures": len(clients) - held,
        "connect_errors": len(errors),
        "connect_error_examples": sorted(set(errors))[:5],
        "kernel": kernel,
        "cpu_percent": cpu,
    }


def _window(written: dict[str, Any], results: list[dict[str, Any]], began: float) -> dict[str, Any]:
    """Write-to-receipt delays of the renames from ``began`` on (the final ones too), and the
    clients that did not end with their job's final state, or closed otherwise than 1000."""
    renames = in_window(written["written"], began, float("inf"))
    samples: list[float] = []
    lost = bad_close = expected = 0
    for result in results:
        for client in result["clients"]:
            if client["error"]:
                continue
            job = client["job"]
            expected += len(renames[job])
            samples += [ms for _s, ms in latencies_by_step(renames[job], client["got"])]
            lost += client["status"] != "completed" or client["step"] != written["final"][job]
            bad_close += client["close_code"] != 1000
    return {
        "latency_ms": percentiles(samples),
        "deliveries_expected": expected,
        "final_lost": lost,
        "close_not_1000": bad_close,
    }
