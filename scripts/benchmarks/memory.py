"""Memory: big documents rewritten, and many history requests (issue 20, point 5).

Two phases, each against a fresh sidecar with the shipped defaults, RSS read from
/proc/PID/status (VmRSS now, VmHWM for the peak):

- **rewrites**: 3 jobs, each progress.json (about 0.9 MB) replaced atomically 120 times, each
  version waited for (the jobs list shows its step) before the next write: every version is one
  the sidecar made and could keep to resume clients from.
- **histories**: 100 jobs whose metrics.jsonl holds 10,000 lines of about 150 bytes; one
  ``GET /api/jobs/{id}/history`` each, one after the other; then nobody asks again, and the
  sidecar is watched until it holds no history (``sidecar_history_bytes`` 0 in ``/metrics``),
  or for 20 s where it has no such gauge (the code before the budget).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import Server, rss_mb, start_sidecar, table, verdict

GROWTH_TARGET_MB = 100.0
RELEASED_SHARE = 0.5
"""After the release, RSS must be back down by at least this share of the histories' growth."""
RELEASE_WAIT = 20.0
"""Seconds to watch for the histories' release (the default grace is 10 s)."""
LINE = (
    b'{"step": %d, "epoch": 1.25, "timestamp": "2025-11-06T12:30:00Z", "loss": 0.25, '
    b'"learning_rate": 0.0005, "grad_norm": 1.5, "samples_per_second": 42.5}\n'
)


def big_document(step: int, payload: bytes) -> bytes:
    """A progress.json of ``len(payload)`` bytes and more: the step, then a long array."""
    head = (
        b'{"status": "running", "current_step": %d, "total_steps": 1000, "loss": 0.5, "samples": '
        % step
    )
    return head + payload + b"}"


def float_payload(size: int) -> bytes:
    """A JSON array of random floats, about ``size`` bytes."""
    rng = random.Random(20)
    count = size // 20
    return b"[" + b", ".join(b"%.15f" % rng.random() for _ in range(count)) + b"]"


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


async def metric(session: aiohttp.ClientSession, url: str, name: str) -> float | None:
    """One figure of ``/metrics``; None where the sidecar has no such metric."""
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    found = re.search(rf"(?m)^{name} (\S+)$", text)
    return float(found.group(1)) if found else None


async def _steps(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(f"{url}/api/jobs") as response:
        jobs = (await response.json())["jobs"]
    return {job["job_id"]: job.get("current_step") for job in jobs}


async def rewrites(*, jobs: int, rewrites: int, doc_bytes: int) -> dict[str, Any]:
    payload = float_payload(doc_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = [f"big{j}" for j in range(jobs)]
        for name in names:
            (root / name).mkdir()
            write_atomic(root / name / "progress.json", big_document(0, payload))
        sidecar = await start_sidecar(root)
        pid = sidecar.process.pid
        try:
            async with aiohttp.ClientSession() as session:
                await _wait_steps(session, sidecar, names, 0)
                before = rss_mb(pid)
                began = time.monotonic()
                for step in range(1, rewrites + 1):
                    for name in names:
                        write_atomic(root / name / "progress.json", big_document(step, payload))
                    await _wait_steps(session, sidecar, names, step)
                seconds = time.monotonic() - began
                await asyncio.sleep(1.0)
                after = rss_mb(pid)
                peak = max(rss_mb(pid, "VmHWM"), after)  # (the kernel updates VmHWM lazily)
                resume_bytes = await metric(session, sidecar.url, "sidecar_resume_bytes")
        finally:
            await sidecar.stop()
    return {
        "jobs": jobs,
        "rewrites": rewrites,
        "document_bytes": len(big_document(rewrites, payload)),
        "seconds": seconds,
        "rss_mb": {"before": before, "after": after, "peak": peak},
        "resume_bytes_held": resume_bytes,
    }


async def _wait_steps(
    session: aiohttp.ClientSession, sidecar: Server, names: list[str], step: int
) -> None:
    """Until the jobs list shows every job at ``step``."""
    deadline = time.monotonic() + 30
    while True:
        steps = await _steps(session, sidecar.url)
        if all(steps.get(name) == step for name in names):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the sidecar never showed step {step}: {steps}")
        await asyncio.sleep(0.005)


async def histories(*, jobs: int, lines: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        history = root / "metrics.jsonl"
        history.write_bytes(b"".join(LINE % i for i in range(lines)))
        names = [f"job{j:03d}" for j in range(jobs)]
        for name in names:
            (root / name).mkdir()
            write_atomic(root / name / "progress.json", b'{"status": "running"}')
            os.link(history, root / name / "metrics.jsonl")  # the same file, read by each job
        sidecar = await start_sidecar(root)
        pid = sidecar.process.pid
        try:
            async with aiohttp.ClientSession() as session:
                before = rss_mb(pid)
                began = time.monotonic()
                for name in names:
                    async with session.get(f"{sidecar.url}/api/jobs/{name}/history") as response:
                        body = await response.json()
                    assert len(body["entries"]) == lines, (name, len(body["entries"]))
                seconds = time.monotonic() - began
                after = rss_mb(pid)
                held_after = await metric(session, sidecar.url, "sidecar_history_bytes")
                released_at = await _wait_released(session, sidecar)
                released = rss_mb(pid)
                held_released = await metric(session, sidecar.url, "sidecar_history_bytes")
                peak = max(rss_mb(pid, "VmHWM"), after)  # (the kernel updates VmHWM lazily)
        finally:
            await sidecar.stop()
    return {
        "jobs": jobs,
        "lines": lines,
        "file_bytes": lines * len(LINE % 5000),
        "requests_seconds": seconds,
        "released_after_seconds": released_at,
        "history_bytes_held": {"after": held_after, "released": held_released},
        "rss_mb": {"before": before, "after": after, "peak": peak, "released": released},
    }


async def _wait_released(session: aiohttp.ClientSession, sidecar: Server) -> float | None:
    """Seconds until the sidecar holds no history (None: never within the wait, or no gauge)."""
    began = time.monotonic()
    while time.monotonic() - began < RELEASE_WAIT:
        held = await metric(session, sidecar.url, "sidecar_history_bytes")
        if held == 0:
            await asyncio.sleep(0.5)  # the trim that follows a release
            return time.monotonic() - began
        await asyncio.sleep(0.1)
    return None


async def run(
    *,
    jobs: int = 3,
    rewrite_count: int = 120,
    doc_bytes: int = 900_000,
    history_jobs: int = 100,
    history_lines: int = 10_000,
) -> dict[str, Any]:
    big = await rewrites(jobs=jobs, rewrites=rewrite_count, doc_bytes=doc_bytes)
    many = await histories(jobs=history_jobs, lines=history_lines)
    big_growth = big["rss_mb"]["peak"] - big["rss_mb"]["before"]
    many_growth = many["rss_mb"]["after"] - many["rss_mb"]["before"]
    many_back = many["rss_mb"]["after"] - many["rss_mb"]["released"]
    return {
        "scenario": "memory",
        "rewrites": big,
        "histories": many,
        "targets": {
            f"rewrites: peak RSS growth <= {GROWTH_TARGET_MB:.0f} MB": verdict(
                big_growth, GROWTH_TARGET_MB
            ),
            f"histories: RSS growth <= {GROWTH_TARGET_MB:.0f} MB": verdict(
                many_growth, GROWTH_TARGET_MB
            ),
            f"histories: RSS back down by >= {RELEASED_SHARE:.0%} of its growth once released": (
                verdict(many_back, RELEASED_SHARE * many_growth, higher_is_better=True)
            ),
        },
    }


def report(result: dict[str, Any]) -> str:
    big, many = result["rewrites"], result["histories"]
    rows = [
        [
            f"{big['jobs']} jobs x {big['rewrites']} rewrites of {big['document_bytes'] / 1e6:.2f} MB",
            big["rss_mb"]["before"],
            big["rss_mb"]["after"],
            big["rss_mb"]["peak"],
            "",
        ],
        [
            f"{many['jobs']} history requests of {many['lines']:,} lines",
            many["rss_mb"]["before"],
            many["rss_mb"]["after"],
            many["rss_mb"]["peak"],
            many["rss_mb"]["released"],
        ],
    ]
    lines = [table(["RSS (MB)", "before", "after", "peak", "released"], rows)]
    lines.append(
        f"rewrites took {big['seconds']:.1f} s; resume bytes held at the end: "
        f"{big['resume_bytes_held']}"
    )
    released = many["released_after_seconds"]
    lines.append(
        f"history requests took {many['requests_seconds']:.1f} s; history bytes held after "
        f"them: {many['history_bytes_held']['after']}, released "
        + (f"{released:.1f} s later" if released is not None else "not within the wait")
    )
    lines += [f"target {t}: {v}" for t, v in result["targets"].items()]
    return "\n".join(lines)
