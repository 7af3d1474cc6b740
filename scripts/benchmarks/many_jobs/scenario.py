"""The many-jobs scenario: a root of ``jobs`` job directories, the shipped sidecar on it at its
defaults, its start-up and rest, then the heavy clients one after another while the probe asks."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import CpuMeter, Server, peak_rss_mb, rss_mb, spawn
from benchmarks.many_jobs.clients import PAGE, dashboards, http_get, list_all, list_pages
from benchmarks.many_jobs.results import Measured, summary
from benchmarks.many_jobs.stall_probe import Probe

JOBS = 100_000
FILES = 300


def make_root(root: Path, jobs: int, files: int) -> None:
    """``jobs`` job directories, ``files`` of them (spread evenly) with a running job's
    progress.json written an hour ago (past the stall rule: at rest)."""
    hour_ago = time.time() - 3600
    every = max(1, jobs // max(1, files))
    for j in range(jobs):
        job_dir = root / f"job{j:06d}"
        os.mkdir(job_dir)
        if j % every == 0 and j // every < files:
            file = job_dir / "progress.json"
            file.write_text(
                json.dumps(
                    {
                        "status": "running",
                        "current_step": j,
                        "total_steps": 1_000_000,
                        "progress": j / 10_000,
                        "loss": 0.25,
                        "eta_seconds": 1200,
                    }
                )
            )
            os.utime(file, (hour_ago, hour_ago))


async def _start_sidecar(root: Path) -> Server:
    """The shipped sidecar at its defaults (``common.start_sidecar``'s, with a longer wait for
    its first line: an old one took 20 s to start on 100,000 jobs)."""
    return await spawn(
        sys.executable, "-m", "sidecar", "--root", str(root), "--port", "0",
        "--log-level", "warning", ready_timeout=600,
    )  # fmt: skip


async def run(
    *,
    jobs: int = JOBS,
    files: int = FILES,
    rest_seconds: float = 30,
    settle_seconds: float = 15,
    rounds: int = 3,
) -> dict[str, Any]:
    """Start-up, rest, then each heavy client in turn while the probe asks; the result."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        made = time.monotonic()
        await asyncio.to_thread(make_root, root, jobs, files)
        made_seconds = time.monotonic() - made
        launched = time.monotonic()
        sidecar = await _start_sidecar(root)
        listening = time.monotonic() - launched
        host, port = sidecar.url.removeprefix("http://").split(":")
        port_n = int(port)
        pid = sidecar.process.pid
        try:
            while True:
                status, body = await http_get(host, port_n, "/healthz")
                if status == 200 and json.loads(body)["jobs"] == jobs:
                    break
                await asyncio.sleep(0.05)
            ready = time.monotonic() - launched
            await asyncio.sleep(settle_seconds)  # past the scans and the watch set up at start
            rss_rest = rss_mb(pid)
            meter = CpuMeter(pid)
            await asyncio.sleep(rest_seconds)
            cpu_rest = meter.percent()

            probe = await Probe.start(host, port_n)
            began = time.time()
            await asyncio.sleep(3)
            probe.mark("quiet", began, time.time())
            listings: list[dict[str, Any]] = []
            paged: list[dict[str, Any]] = []
            one: list[dict[str, Any]] = []
            three: list[dict[str, Any]] = []
            for _ in range(rounds):
                listing = await list_all(host, port_n)
                probe.mark("GET /api/jobs", listing["began"], listing["ended"])
                listings.append(listing)
                await asyncio.sleep(1)
            pages = await list_pages(host, port_n)
            probe.mark(f"GET /api/jobs?limit={PAGE}, every page", pages["began"], pages["ended"])
            paged.append(pages)
            await asyncio.sleep(1)
            for count, results in ((1, one), (3, three)):
                for _ in range(max(1, rounds - 1)):
                    result = await dashboards(f"{sidecar.ws}/ws/jobs", count)
                    name = "1 dashboard on /ws/jobs" if count == 1 else "3 dashboards at once"
                    probe.mark(name, result["began"], result["ended"])
                    results.append(result)
                    await asyncio.sleep(1)
            probed = await probe.stop()
            await asyncio.sleep(5)
            rss_after = rss_mb(pid)
            rss_peak = peak_rss_mb(pid)
        finally:
            await sidecar.stop()
    return summary(
        Measured(
            jobs=jobs,
            files=files,
            make_root_seconds=made_seconds,
            listening_seconds=listening,
            ready_seconds=ready,
            settle_seconds=settle_seconds,
            rest_seconds=rest_seconds,
            rss_rest_mb=rss_rest,
            cpu_rest_percent=cpu_rest,
            windows=probe.windows,
            probed=probed,
            listings=listings,
            paged=paged,
            one=one,
            three=three,
            rss_after_mb=rss_after,
            rss_peak_mb=rss_peak,
        )
    )
