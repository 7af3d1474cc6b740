"""Bytes: the frames a client receives during a real tiny training run, patches against whole states."""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import start_sidecar, table, verdict

MODES = {"diff (default)": "", "format=full": "?format=full"}


async def _follow(url: str, sizes: list[int]) -> None:
    for _ in range(600):  # wait for the job to exist
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            async for message in ws:
                sizes.append(len(message.data.encode()))
            if ws.close_code == 1000:
                return
        sizes.clear()
        await asyncio.sleep(0.05)


async def run(*, steps: int = 400, interval: float = 0.25) -> dict[str, Any]:
    sizes: dict[str, list[int]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "run").mkdir()
        sidecar = await start_sidecar(root)
        try:
            followers = [
                asyncio.create_task(_follow(f"{sidecar.ws}/ws/training/run{query}", sizes[mode]))
                for mode, query in MODES.items()
            ]
            await asyncio.sleep(0.5)
            trainer = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "trainer", "--jobs-root", str(root), "--job-id", "run", "--max-steps", str(steps),
                "--eval-steps", "50", "--progress-interval", str(interval),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            assert await trainer.wait() == 0
            await asyncio.wait_for(asyncio.gather(*followers), 60)
        finally:
            await sidecar.stop()
    figures = {}
    for mode, got in sizes.items():
        updates = got[1:]  # after the snapshot
        figures[mode] = {
            "messages": len(got),
            "snapshot_bytes": got[0],
            "bytes_per_update_mean": statistics.mean(updates),
            "bytes_per_update_median": statistics.median(updates),
            "total_bytes": sum(got),
        }
    ratio = figures["diff (default)"]["total_bytes"] / figures["format=full"]["total_bytes"]
    return {
        "scenario": "bytes",
        "steps": steps,
        "progress_interval": interval,
        "results": figures,
        "ratios": {"diff / full, total bytes": ratio},
        "targets": {"diff <= 25 % of full": verdict(ratio, 0.25)},
    }


def report(result: dict[str, Any]) -> str:
    rows = [
        [
            mode,
            f["messages"],
            f["snapshot_bytes"],
            f["bytes_per_update_mean"],
            f["bytes_per_update_median"],
            f["total_bytes"],
        ]
        for mode, f in result["results"].items()
    ]
    lines = [
        table(
            [
                "bytes, a real training run",
                "messages",
                "snapshot",
                "per update (mean)",
                "(median)",
                "total",
            ],
            rows,
        )
    ]
    lines += [f"{name}: {ratio:.1%}" for name, ratio in result["ratios"].items()]
    lines += [f"target {t}: {v}" for t, v in result["targets"].items()]
    return "\n".join(lines)
