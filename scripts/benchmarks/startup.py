"""Start-up: time from launch to ready (jobs known) with 10,000 jobs, against an empty root."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import start_sidecar, table, verdict, write_atomic

JOBS = 10_000


async def _time_to_ready(root: Path, expect: int) -> float:
    began = time.monotonic()
    sidecar = await start_sidecar(root)
    ready = time.monotonic() - began
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{sidecar.url}/healthz") as response,
        ):
            jobs = (await response.json())["jobs"]
        assert jobs == expect, f"{jobs} jobs known at ready, not {expect}"
    finally:
        await sidecar.stop()
    return ready


async def run(*, rounds: int = 3) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as full, tempfile.TemporaryDirectory() as empty:
        for j in range(JOBS):
            (Path(full) / f"job{j:05d}").mkdir()
            write_atomic(
                Path(full) / f"job{j:05d}" / "progress.json",
                {"status": "running", "step": j, "loss": 0.25},
            )
        times: dict[str, list[float]] = {"empty root": [], f"{JOBS:,} jobs": []}
        for _ in range(rounds):  # in turn
            times["empty root"].append(await _time_to_ready(Path(empty), 0))
            times[f"{JOBS:,} jobs"].append(await _time_to_ready(Path(full), JOBS))
    medians = {name: statistics.median(t) for name, t in times.items()}
    loaded = medians[f"{JOBS:,} jobs"]
    return {
        "scenario": "startup",
        "rounds": rounds,
        "seconds": times,
        "median_seconds": medians,
        "ratios": {f"{JOBS:,} jobs / empty": loaded / medians["empty root"]},
        "targets": {f"ready <= 2 s with {JOBS:,} jobs": verdict(loaded, 2.0)},
    }


def report(result: dict[str, Any]) -> str:
    rows = [
        [name, result["median_seconds"][name], min(t), max(t)]
        for name, t in result["seconds"].items()
    ]
    lines = [table(["start-up to ready (s)", "median", "min", "max"], rows)]
    lines += [f"{name}: x{ratio:.1f}" for name, ratio in result["ratios"].items()]
    lines += [f"target {t}: {v}" for t, v in result["targets"].items()]
    return "\n".join(lines)
