"""Idle: 1,000 jobs and no writes. The sidecar against the seed's 2-s loop over the same files."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import CpuMeter, start_legacy, start_sidecar, table, verdict, write_atomic

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


async def run(*, seconds: float = 60) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for j in range(JOBS):
            (root / f"job{j}").mkdir()
            write_atomic(
                root / f"job{j}" / "progress.json", {"status": "running", "step": j, "loss": 0.5}
            )
        sidecar, legacy = (
            await start_sidecar(root, "--stall-after", "3600"),
            await start_legacy(root),
        )
        try:
            async with aiohttp.ClientSession() as session:
                await asyncio.sleep(5)  # past start-up and the first scans
                side0, legacy0 = (
                    await _sidecar_counts(session, sidecar.url),
                    await _legacy_reads(session, legacy.url),
                )
                meters = CpuMeter(sidecar.process.pid), CpuMeter(legacy.process.pid)
                await asyncio.sleep(seconds)
                cpu = [m.percent() for m in meters]
                side1, legacy1 = (
                    await _sidecar_counts(session, sidecar.url),
                    await _legacy_reads(session, legacy.url),
                )
        finally:
            await sidecar.stop()
            await legacy.stop()
    reads = side1["sidecar_file_reads_total"] - side0["sidecar_file_reads_total"]
    return {
        "scenario": "idle",
        "jobs": JOBS,
        "seconds": seconds,
        "sidecar": {
            "cpu_percent": cpu[0],
            "file_reads": reads,
            "scans": side1["sidecar_scans_total"] - side0["sidecar_scans_total"],
            "scan_stats": side1["sidecar_scan_stats_total"] - side0["sidecar_scan_stats_total"],
        },
        "seed's 2-s loop": {"cpu_percent": cpu[1], "file_reads": legacy1 - legacy0},
        "ratios": {"seed's loop CPU / sidecar CPU": cpu[1] / cpu[0] if cpu[0] else float("inf")},
        "targets": {
            "sidecar CPU <= 1 % of a core": verdict(cpu[0], 1.0),
            "sidecar file reads == 0": verdict(reads, 0),
        },
    }


def report(result: dict[str, Any]) -> str:
    side, legacy = result["sidecar"], result["seed's 2-s loop"]
    rows = [
        [
            "sidecar",
            side["cpu_percent"],
            side["file_reads"],
            f"{side['scans']:.0f} scans, {side['scan_stats']:.0f} stats",
        ],
        ["seed's 2-s loop", legacy["cpu_percent"], legacy["file_reads"], "-"],
    ]
    lines = [
        table(
            [
                f"idle, {result['jobs']} jobs, {result['seconds']:.0f} s",
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
