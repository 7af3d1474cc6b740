"""History flood: another job's delay, and memory, as 100 MB of history come at once.

100 MB appended to a followed job's metrics.jsonl, and a first ?history=1 on a 200 MB one, while
another job is rewritten at 50 Hz: how late that job's states arrive, and the sidecar's memory.

One sidecar (default settings: --max-history 10,000). Job B's progress.json is replaced every
20 ms and followed by a client; for each write, the delay is the time from the rename until the
client holds that state or a newer one. Measured first alone (the baseline), then in rounds:
100 MB appended at once (from a thread, as fast as the disk takes it) to job A's metrics.jsonl,
which a client follows with ?history=1, until that client holds the file's last line; then a
client asks for the history of a job whose metrics.jsonl is already 200 MB (a new job each
round, a hard link to the same file), until it holds the last line. The clients use the
websockets library, apart from the sidecar's aiohttp.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import websockets

from benchmarks.common import (
    Server,
    percentiles,
    rss_mb,
    start_sidecar,
    table,
    verdict,
    write_atomic,
)

TARGET_MS = 50.0
RSS_TARGET_MB = 50.0
LINE = b'{"step": %d, "epoch": 1.5, "timestamp": "2025-11-06T12:30:00Z", "loss": 0.25, "learning_rate": 0.0005}\n'
SETTLE = 0.5  # seconds of B's states counted after each round's end


def _lines(first: int, total_bytes: int) -> tuple[bytes, int]:
    """Lines from step ``first`` filling about ``total_bytes``; and the step after the last."""
    count = total_bytes // len(LINE % first)
    return b"".join(LINE % i for i in range(first, first + count)), first + count


def _append(path: Path, data: bytes) -> float:
    """Append ``data`` to ``path`` as fast as the disk takes it; the seconds that took."""
    began = time.monotonic()
    with open(path, "ab") as f:
        for i in range(0, len(data), 4 << 20):
            f.write(data[i : i + (4 << 20)])
    return time.monotonic() - began


class _OtherJob:
    """Job B: written every 20 ms, followed by one client; the delay of each write."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.written: dict[int, float] = {}
        self.arrived: list[tuple[float, int]] = []
        self.following = asyncio.Event()
        self.step = 0

    async def write(self, stop: asyncio.Event) -> None:
        began = time.monotonic()
        while not stop.is_set():
            self.step += 1
            write_atomic(self.file, {"status": "running", "step": self.step})
            self.written[self.step] = time.monotonic()
            await asyncio.sleep(max(0.0, began + self.step * 0.02 - time.monotonic()))

    async def follow(self, url: str) -> None:
        async with websockets.connect(url) as ws:
            async for message in ws:
                step = json.loads(message).get("step")
                if isinstance(step, int):
                    self.arrived.append((time.monotonic(), step))
                    self.following.set()

    def delays_ms(self, since: float, until: float) -> list[float]:
        """For each write between ``since`` and ``until``, ms until the client held it."""
        delays, index = [], 0
        for step, written in sorted(self.written.items()):
            while index < len(self.arrived) and self.arrived[index][1] < step:
                index += 1
            if index == len(self.arrived):
                break
            if since <= written <= until:
                delays.append((self.arrived[index][0] - written) * 1000)
        return delays


async def _follow_history(url: str, last_step: int) -> float:
    """Follow a job with ?history=1 until it holds ``last_step``; the seconds that took."""
    began = time.monotonic()
    async with websockets.connect(url, max_size=None) as ws:
        async for message in ws:
            data = json.loads(message)
            if (
                data["type"] == "log"
                and data["entries"]
                and data["entries"][-1]["step"] == last_step
            ):
                return time.monotonic() - began
    raise AssertionError("the history ended before its last line")


@asynccontextmanager
async def _job_b_running(sidecar: Server, job: _OtherJob) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(job.write(stop)),
        asyncio.create_task(job.follow(f"{sidecar.ws}/ws/training/b")),
    ]
    try:
        await asyncio.wait_for(job.following.wait(), 30)
        yield
    finally:
        stop.set()
        tasks[1].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run(
    *, append_mb: int = 100, file_mb: int = 200, rounds: int = 5, baseline_seconds: float = 5
) -> dict[str, Any]:
    phases: dict[str, list[float]] = {
        "baseline": [],
        "append, unread": [],
        "append": [],
        "first look": [],
    }
    seconds: dict[str, list[float]] = {"append write": [], "append": [], "first look": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for job_id in ("a", "b", "c"):
            (root / job_id).mkdir()
            write_atomic(root / job_id / "progress.json", {"status": "running"})
            (root / job_id / "metrics.jsonl").write_bytes(LINE % 0)
        big, big_end = _lines(0, file_mb << 20)
        (root / "big.jsonl").write_bytes(big)
        del big
        sidecar = await start_sidecar(root)
        pid = sidecar.process.pid
        job = _OtherJob(root / "b" / "progress.json")
        try:
            async with _job_b_running(sidecar, job):
                began = time.monotonic()
                await asyncio.sleep(baseline_seconds)
                phases["baseline"] = job.delays_ms(began, time.monotonic())
                rss_before = rss_mb(pid)
                history_a = f"{sidecar.ws}/ws/training/a?history=1"
                step = 1
                for r in range(rounds):
                    flood, step_after = _lines(step, append_mb << 20)
                    # The same append to a job whose history nobody reads: what the write
                    # itself costs everyone on this machine.
                    began = time.monotonic()
                    await asyncio.to_thread(_append, root / "c" / "metrics.jsonl", flood)
                    await asyncio.sleep(SETTLE)
                    phases["append, unread"] += job.delays_ms(began, time.monotonic())

                    follower = asyncio.create_task(_follow_history(history_a, step_after - 1))
                    await asyncio.sleep(0.5)  # connected, and past its first log message
                    began = time.monotonic()
                    write = await asyncio.to_thread(_append, root / "a" / "metrics.jsonl", flood)
                    seconds["append write"].append(write)
                    del flood
                    await asyncio.wait_for(follower, 120)
                    seconds["append"].append(time.monotonic() - began)
                    await asyncio.sleep(SETTLE)
                    phases["append"] += job.delays_ms(began, time.monotonic())
                    step = step_after

                    job_id = f"big{r}"
                    (root / job_id).mkdir()
                    write_atomic(root / job_id / "progress.json", {"status": "running"})
                    os.link(root / "big.jsonl", root / job_id / "metrics.jsonl")
                    await asyncio.sleep(0.5)  # the job is known
                    began = time.monotonic()
                    await asyncio.wait_for(
                        _follow_history(
                            f"{sidecar.ws}/ws/training/{job_id}?history=1", big_end - 1
                        ),
                        120,
                    )
                    seconds["first look"].append(time.monotonic() - began)
                    await asyncio.sleep(SETTLE)
                    phases["first look"] += job.delays_ms(began, time.monotonic())
                rss_after, rss_peak = rss_mb(pid), rss_mb(pid, "VmHWM")
        finally:
            await sidecar.stop()
    figures = {name: percentiles(samples) for name, samples in phases.items()}
    return {
        "scenario": "history-flood",
        "append_mb": append_mb,
        "file_mb": file_mb,
        "rounds": rounds,
        "baseline_seconds": baseline_seconds,
        "other_job_delay_ms": figures,
        "samples_ms": phases,
        "seconds": seconds,
        "rss_mb": {"before": rss_before, "after": rss_after, "peak": rss_peak},
        "targets": {
            f"other job's delay during a {append_mb} MB append, max <= {TARGET_MS:.0f} ms": verdict(
                figures["append"]["max"], TARGET_MS
            ),
            f"other job's delay during a first look at {file_mb} MB, max <= {TARGET_MS:.0f} ms": (
                verdict(figures["first look"]["max"], TARGET_MS)
            ),
            f"peak RSS - RSS before <= {RSS_TARGET_MB:.0f} MB": verdict(
                rss_peak - rss_before, RSS_TARGET_MB
            ),
        },
    }


def report(result: dict[str, Any]) -> str:
    rows = [
        [name, f["n"], f["p50"], f["p99"], f["max"]]
        for name, f in result["other_job_delay_ms"].items()
    ]
    lines = [table(["other job's delay (ms)", "n", "p50", "p99", "max"], rows)]
    secs = result["seconds"]
    lines.append(
        f"{result['append_mb']} MB appended in {min(secs['append write']):.2f}-"
        f"{max(secs['append write']):.2f} s, all read in {max(secs['append']):.2f} s at most; "
        f"first look at {result['file_mb']} MB: {max(secs['first look']):.2f} s at most"
    )
    rss = result["rss_mb"]
    lines.append(
        f"RSS: {rss['before']:.0f} MB before, {rss['after']:.0f} MB after, peak {rss['peak']:.0f} MB"
    )
    lines += [f"target {t}: {v}" for t, v in result["targets"].items()]
    return "\n".join(lines)
