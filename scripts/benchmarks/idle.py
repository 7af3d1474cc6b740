"""Idle: 1,000 jobs and no writes; the sidecar at its defaults, alone and beside the 2-s loop.

The seed's 2-s loop reads the same files meanwhile (inotify reports those reads to the sidecar).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import (
    CpuMeter,
    start_legacy,
    start_sidecar,
    table,
    verdict,
    write_jobs_at_rest,
)

JOBS = 1000


async def _sidecar_counts(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    wanted = {"sidecar_file_reads_total", "sidecar_scans_total", "sidecar_scan_stats_total"}
    return {
        s.name: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name in wanted
    }


async def _legacy_reads(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(f"{url}/reads") as response:
        return int((await response.json())["reads"])


async def run(*, seconds: float = 30) -> dict[str, Any]:
    """Two windows of ``seconds``: the sidecar alone (the target), then beside the seed's loop,
    whose reads of every file every 2 s wake the sidecar's watcher too (inotify reports reads
    of the files it watches; the sidecar ignores them, but it wakes up to do so)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_jobs_at_rest(root, JOBS)
        sidecar = await start_sidecar(root)
        legacy = None
        try:
            async with aiohttp.ClientSession() as session:
                await asyncio.sleep(5)  # past start-up and the first scans
                counts = [await _sidecar_counts(session, sidecar.url)]
                meter = CpuMeter(sidecar.process.pid)
                await asyncio.sleep(seconds)
                alone = meter.percent()
                counts.append(await _sidecar_counts(session, sidecar.url))
                legacy = await start_legacy(root)
                await asyncio.sleep(2)  # past the loop's first pass
                legacy0 = await _legacy_reads(session, legacy.url)
                meters = CpuMeter(sidecar.process.pid), CpuMeter(legacy.process.pid)
                await asyncio.sleep(seconds)
                beside, legacy_cpu = (m.percent() for m in meters)
                counts.append(await _sidecar_counts(session, sidecar.url))
                legacy_reads = await _legacy_reads(session, legacy.url) - legacy0
        finally:
            await sidecar.stop()
            if legacy is not None:
                await legacy.stop()

    def window(i: int, cpu: float) -> dict[str, float]:
        before, after = counts[i], counts[i + 1]
        return {
            "cpu_percent": cpu,
            "file_reads": after["sidecar_file_reads_total"] - before["sidecar_file_reads_total"],
            "scans": after["sidecar_scans_total"] - before["sidecar_scans_total"],
            "scan_stats": after["sidecar_scan_stats_total"] - before["sidecar_scan_stats_total"],
        }

    side, side_beside = window(0, alone), window(1, beside)
    return {
        "scenario": "idle",
        "jobs": JOBS,
        "seconds": seconds,
        "sidecar flags": "defaults",
        "sidecar": side,
        "sidecar beside the seed's loop": side_beside,
        "seed's 2-s loop": {"cpu_percent": legacy_cpu, "file_reads": legacy_reads},
        "ratios": {"seed's loop CPU / sidecar CPU": legacy_cpu / alone if alone else float("inf")},
        "targets": {
            "sidecar CPU <= 1 % of a core": verdict(alone, 1.0),
            "sidecar file reads == 0": verdict(side["file_reads"] + side_beside["file_reads"], 0),
        },
    }


def report(result: dict[str, Any]) -> str:
    rows = []
    for name in ("sidecar", "sidecar beside the seed's loop", "seed's 2-s loop"):
        row = result[name]
        scans = (
            f"{row['scans']:.0f} scans, {row['scan_stats']:.0f} stats" if "scans" in row else "-"
        )
        rows.append([name, row["cpu_percent"], row["file_reads"], scans])
    lines = [
        table(
            [
                f"idle, {result['jobs']} jobs, {result['seconds']:.0f} s a window",
                "CPU %",
                "file reads",
                "stat-only scans",
            ],
            rows,
        )
    ]
    lines += [f"{name}: x{ratio:.1f}" for name, ratio in result["ratios"].items()]
    lines += [f"target {t}: {v}" for t, v in result["targets"].items()]
    return "\n".join(lines)
