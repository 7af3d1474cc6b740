"""The sidecar under measurement: started with its log in a file and limits out of the way of
thousands of clients from one address, waited for until it lists every job, its GC pauses read
from ``/metrics``, and the problems its log shows."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from support.listening import NotListening, await_listening

from benchmarks.common import Server

# Every load client connects from 127.0.0.1, up to 10,000 of them to /ws/jobs or to 100 jobs: lift
# the total, per-job and per-address limits (defaults 1,000, 10 and 5) out of the way.
LIMITS: tuple[str, ...] = ("--max-clients", "12000", "--max-clients-per-job", "12000")
LIMITS += ("--max-clients-per-address", "12000")
GC_TOTAL = "sidecar_gc_pause_seconds_total"
GC_MAX = "sidecar_gc_pause_seconds_max"
GC_FULL = "sidecar_gc_collections_total"


def disk_tmp() -> tempfile.TemporaryDirectory[str]:
    """A temporary folder on disk (/var/tmp), not on a tmpfs, where jobs roots go: the writes
    and the sidecar's reads are those of a real filesystem."""
    where = "/var/tmp" if os.access("/var/tmp", os.W_OK) else None
    return tempfile.TemporaryDirectory(prefix="bench-", dir=where)


async def start_logged_sidecar(root: Path, log: Path) -> Server:
    """A sidecar on ``root`` (asyncio's loop, as shipped), its stderr in ``log``."""
    with open(log, "ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sidecar", "--root", str(root), "--port", "0",
            "--log-level", "warning", *LIMITS,
            stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
    try:
        listening = await await_listening(process, timeout=60, what="the sidecar")
    except NotListening as e:
        raise SystemExit(f"{e}\nits log: {log}") from None
    return Server(process, listening.url)


async def wait_listed(url: str, count: int, timeout: float = 60) -> None:
    """Until ``url``'s ``/api/jobs`` lists ``count`` jobs or more."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{url}/api/jobs") as response:
                listed = len((await response.json())["jobs"])
            if listed >= count:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} lists {listed} jobs, not {count}, after {timeout} s")
            await asyncio.sleep(0.1)


async def metrics_text(url: str) -> str:
    """The server's ``/metrics``, as text ("" when it does not answer it)."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/metrics", timeout=aiohttp.ClientTimeout(total=10)) as response,
        ):
            return await response.text() if response.status == 200 else ""
    except (aiohttp.ClientError, TimeoutError):
        return ""


async def gc_pauses(url: str) -> dict[str, float] | None:
    """The sidecar's GC pause counters (seconds in all, longest pause); None when its
    ``/metrics`` has none."""
    return parse_gc_pauses(await metrics_text(url))


def parse_gc_pauses(text: str) -> dict[str, float] | None:
    """``sidecar_gc_pause_seconds_total`` (summed over its labels) and ``..._max`` (the
    largest) from a Prometheus text exposition; None without the total."""
    found: dict[str, list[float]] = {GC_TOTAL: [], GC_MAX: [], GC_FULL: []}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name == GC_FULL and 'generation="2"' not in line:
            continue
        if name in found:
            try:
                found[name].append(float(line.rsplit(" ", 1)[1]))
            except ValueError:
                continue
    if not found[GC_TOTAL]:
        return None
    return {
        "total": sum(found[GC_TOTAL]),
        "max": max(found[GC_MAX], default=float("nan")),
        "full": sum(found[GC_FULL]),
    }


def gc_increase(
    before: dict[str, float] | None, after: dict[str, float] | None
) -> dict[str, Any] | None:
    """The GC pause seconds over a window and the longest pause so far; None without both."""
    if before is None or after is None:
        return None
    return {
        "pause_seconds": after["total"] - before["total"],
        "full_collections": after.get("full", 0) - before.get("full", 0),
        "max_pause_seconds": after["max"],
    }


def log_problems(log: Path, limit: int = 20) -> list[str]:
    """The log's warnings, errors and tracebacks (at most ``limit`` lines)."""
    if not log.exists():
        return []
    lines = log.read_text(errors="replace").splitlines()
    bad = [ln for ln in lines if "WARNING" in ln or "ERROR" in ln or "Traceback" in ln]
    return bad[:limit]
