"""One dashboards phase against a running server (a sidecar, or a cluster's gateway): the
writer rewriting every job once a second, ``dashboards`` picows clients of ``/ws/jobs`` in load
processes of their own, and the figures of a measurement window."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import CpuMeter, peak_rss_mb, percentiles
from benchmarks.dashboards.lag import in_window, lag_ms
from benchmarks.dashboards.load import CONNECT_TIMEOUT
from benchmarks.dashboards.server import gc_increase, gc_pauses
from benchmarks.dashboards.workers import expect, kill_all, last_json, spawn, tell
from benchmarks.dashboards.writer import start_writer, stop_writer

LOADS = 2
PROBES = 4
"""Probe dashboards per load process: those that keep and parse every message."""
GRACE = 2.0
"""Seconds the probes still listen after the window, for the renames near its end."""


async def measure_dashboards(
    url: str,
    jobs: Sequence[tuple[Path, str]],
    *,
    dashboards: int,
    pids: Mapping[str, int],
    window: float,
    loads: int = LOADS,
    probes: int = PROBES,
) -> dict[str, Any]:
    """Connect ``dashboards`` clients to ``url``'s ``/ws/jobs`` while ``jobs`` (root, job id)
    are rewritten, then measure ``window`` seconds.

    Args:
        url: the server's http:// base URL.
        jobs: the jobs to write, each in its jobs root (the server must list them already).
        dashboards: how many clients of ``/ws/jobs``, spread over ``loads`` processes.
        pids: the processes whose CPU and peak RSS are reported, by name.
        window: the measurement window, in seconds.
        loads: load processes.
        probes: probe dashboards per load process.
    """
    writer = await start_writer(jobs)
    processes: list[asyncio.subprocess.Process] = []
    try:
        await asyncio.sleep(1.0)  # the writes flow before the first dashboard connects
        ws = url.replace("http", "ws", 1) + "/ws/jobs"
        for w in range(loads):
            count = len(range(w, dashboards, loads))
            if count:
                spec = {"url": ws, "count": count, "probes": probes}
                processes.append(await spawn("--dashboards-load", spec))
        for process in processes:
            await expect(process, "ready", 60)
        await tell(processes, "connect")
        connected = [
            json.loads(await expect(p, "connected", CONNECT_TIMEOUT + 60)) for p in processes
        ]
        gc_before = await gc_pauses(url)
        meters = {name: CpuMeter(pid) for name, pid in pids.items()}
        load_meters = [CpuMeter(p.pid) for p in processes]
        writer_meter = CpuMeter(writer.pid)
        await tell(processes, "window")
        began = time.time()
        await asyncio.sleep(window)
        await tell(processes, "end")
        ended = time.time()
        cpu = {name: meter.percent() for name, meter in meters.items()}
        cpu["load"] = sum(m.percent() for m in load_meters)
        cpu["writer"] = writer_meter.percent()
        gc = gc_increase(gc_before, await gc_pauses(url))
        await asyncio.sleep(GRACE)
        await tell(processes, "stop")
        results = [await last_json(p, 120) for p in processes]
        written = await stop_writer(writer, finish=False)
    finally:
        kill_all([*processes, writer])
    return _figures(
        dashboards, connected, results, written, (began, ended), cpu, gc,
        {name: peak_rss_mb(pid) for name, pid in pids.items()},
    )  # fmt: skip


def _figures(
    dashboards: int,
    connected: list[dict[str, Any]],
    results: list[dict[str, Any]],
    written: dict[str, Any],
    window: tuple[float, float],
    cpu: dict[str, float],
    gc: dict[str, Any] | None,
    peak_rss: dict[str, float],
) -> dict[str, Any]:
    held = sum(c["held"] for c in connected)
    every = held == dashboards and all(c["last"] is not None for c in connected)
    connect_seconds = (
        max(c["last"] for c in connected) - min(c["began"] for c in connected) if every else None
    )
    clients = [d for r in results for d in r["dashboards"]]
    rates = [d["messages_per_second"] for d in clients]
    samples: list[float] = []
    unseen = 0
    renames = in_window(written["written"], *window)
    for client in clients:
        if client["steps"] is not None:
            delays, missed = lag_ms(renames, client["steps"])
            samples += delays
            unseen += missed
    return {
        "dashboards": dashboards,
        "jobs": len(written["written"]),
        "connect_seconds": connect_seconds,
        "snapshots_held": held,
        "connect_errors": sum(len(r["errors"]) for r in results),
        "connect_error_examples": [e for r in results for e in r["errors"]][:5],
        "window_seconds": window[1] - window[0],
        "cpu_percent": cpu,
        "peak_rss_mb": peak_rss,
        "messages_per_second": {
            "median": statistics.median(rates) if rates else float("nan"),
            "min": min(rates, default=float("nan")),
        },
        "kb_per_second_median": (
            statistics.median(d["bytes_per_second"] for d in clients) / 1000
            if clients
            else float("nan")
        ),
        "snapshots_in_window": sum(d["snapshots_in_window"] for d in clients),
        "snapshots_after_first": sum(d["snapshots_after_first"] for d in clients),
        "dropped": sum(d["close_code"] is not None for d in clients),
        "close_codes": sorted({d["close_code"] for d in clients if d["close_code"] is not None}),
        "probes": sum(d["steps"] is not None for d in clients),
        "lag_ms": percentiles(samples),
        "lag_unseen": unseen,
        "gc": gc,
        "writer": {
            "writes_per_second": written["writes"] / written["seconds"],
            "late_ms": written["late_ms"],
        },
        "probe_parse_cpu_seconds": sum(r["parse_cpu_seconds"] for r in results),
    }
