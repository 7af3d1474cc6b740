"""What the cluster's parts measure with: the documents written, the delays per write, the
sidecars' listings, health and logs, Redis' figures and command counts."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from benchmarks.cluster.processes import Sidecar

if TYPE_CHECKING:  # Redis' client is the cluster extra's: imported when the scenario runs
    import redis.asyncio as aioredis

EXPECTED_LOG = re.compile(r"bus down|bus up again|bus unreachable")
"""Warnings a Redis restart is expected to cause (recovery); any other is reported."""


def document(step: int, final: int) -> dict[str, Any]:
    """A job's progress.json at ``step`` of ``final`` (completed at ``final``)."""
    return {
        "status": "completed" if step == final else "running",
        "current_step": step,
        "total_steps": final,
        "progress": round(100 * step / final, 2),
        "loss": round(2.5 / (1 + 0.1 * step), 6),
        "written_at": time.time(),
    }


def per_write(written: dict[int, float], got: list[list[float]]) -> dict[int, float]:
    """For each write, ms until the client held that step or a later one (none: never)."""
    delays, index = {}, 0
    for step in sorted(written):
        while index < len(got) and got[index][1] < step:
            index += 1
        if index == len(got):
            break
        delays[step] = (got[index][0] - written[step]) * 1000
    return delays


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
        return await response.json()


async def wait_jobs(url: str, count: int, final: int | None = None, timeout: float = 60) -> None:
    """Until ``url``'s /api/jobs lists ``count`` jobs (all at ``final``, completed, if set)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            jobs = (await get_json(session, f"{url}/api/jobs"))["jobs"]
            if len(jobs) >= count and (final is None or _all_final(jobs, count, final)):
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} lists {len(jobs)} jobs, not {count}, after {timeout} s")
            await asyncio.sleep(0.05)


def _all_final(jobs: list[dict[str, Any]], count: int, final: int) -> bool:
    done = [j for j in jobs if j.get("complete") and j.get("current_step") == final]
    return len(done) == count


def log_lines(sidecars: list[Sidecar]) -> dict[str, Any]:
    """Each sidecar's warnings and errors: those a Redis restart explains, and the others."""
    report: dict[str, Any] = {}
    for sidecar in sidecars:
        lines = sidecar.log.read_text(errors="replace").splitlines()
        bad = [ln for ln in lines if " WARNING " in ln or " ERROR " in ln or "Traceback" in ln]
        other = [ln for ln in bad if not EXPECTED_LOG.search(ln)]
        report[sidecar.name] = {
            "expected": len(bad) - len(other),
            "unexpected": len(other),
            "unexpected_lines": other[:20],
        }
    return report


def load_average() -> float:
    """The machine's 1-minute load average: how busy the rest of it was."""
    return round(os.getloadavg()[0], 2)


def progress_file(root: Path, job: str) -> Path:
    """``job``'s progress.json under ``root``, its directory made."""
    path = root / job / "progress.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


async def redis_figures(client: aioredis.Redis) -> dict[str, Any]:
    """Redis' memory, its keys, and the entries of every node's stream together."""
    from sidecar.bus import keys

    memory: Any = await client.info("memory")
    streams = [k async for k in client.scan_iter(match=keys.pattern(keys.CHANGES), count=1000)]
    return {
        "used_memory_mb": memory["used_memory"] / 2**20,
        "used_memory_rss_mb": memory["used_memory_rss"] / 2**20,
        "streams": len(streams),
        "stream_length": sum([await client.xlen(stream) for stream in streams]),
        "keys": await client.dbsize(),
    }


async def command_stats(client: aioredis.Redis) -> dict[str, dict[str, int]]:
    """Redis' count of calls and microseconds per command so far (INFO commandstats)."""
    stats: Any = await client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): {"calls": int(v["calls"]), "usec": int(v["usec"])}
        for name, v in stats.items()
    }


def commands_since(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], changes: float
) -> dict[str, dict[str, float]]:
    """Calls and Redis microseconds per change of each command, between two readings."""
    out = {}
    for name, now in sorted(after.items()):
        then = before.get(name, {"calls": 0, "usec": 0})
        calls = now["calls"] - then["calls"]
        if calls:
            out[name] = {
                "calls_per_change": calls / changes,
                "usec_per_change": (now["usec"] - then["usec"]) / changes,
            }
    return out


def tally(values: Any) -> dict[str, int]:
    """How many times each value comes (by its text)."""
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return counts


async def fetch_health(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        health: dict[str, Any] = await get_json(session, f"{url}/healthz")
        return health
