"""A flood of history: 100 MB appended to one job's metrics.jsonl at once, or a first look at a
100 MB one, neither stalls another job nor swells the sidecar. A real sidecar process (its memory
is its own), real files, real sockets."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from scripts.support.listening import await_listening
from tests.helpers import StreamClient, write_atomic

REPO = Path(__file__).resolve().parents[3]
FLOOD_BYTES = 100 << 20
MAX_HISTORY = 1000
# The issue saw 17 s; the target (see the history-flood benchmark) is 50 ms. A busy 2-core
# machine runs this test beside the writer, the clients and the sidecar: a generous bound.
MAX_DELAY = 0.5
MAX_RSS_GROWTH_MB = 100  # it grew by about 250 MB
WAIT = 30.0

pytestmark = pytest.mark.timeout(90)


def metrics_lines(first: int, total_bytes: int) -> tuple[bytes, int]:
    """Lines of steps ``first``, ``first + 1``... filling about ``total_bytes``; and the step
    after the last."""
    line = b'{"step": %d, "epoch": 1.5, "timestamp": "2025-11-06T12:30:00Z", "loss": 0.25}\n'
    count = total_bytes // len(line % first)
    return b"".join(line % i for i in range(first, first + count)), first + count


@asynccontextmanager
async def sidecar_process(root: Path, *args: str) -> AsyncIterator[tuple[int, str]]:
    """A sidecar in its own process; its pid and its base URL."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "sidecar", "--root", str(root), "--port", "0"),
        *("--log-level", "warning", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=REPO,
    )
    try:
        listening = await await_listening(process, timeout=WAIT, what="the sidecar")
        yield process.pid, listening.url
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


def rss_mb(pid: int, field_name: str) -> float:
    """VmRSS (now) or VmHWM (peak so far) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field_name}")


@dataclass
class OtherJob:
    """Job B, rewritten every 20 ms and followed by a client: how late each state arrives."""

    file: Path
    written: dict[int, float] = field(default_factory=dict)
    delays: list[float] = field(default_factory=list)
    arrival: asyncio.Event = field(default_factory=asyncio.Event)
    step: int = 0

    async def write(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.step += 1
            write_atomic(self.file, {"status": "running", "current_step": self.step})
            self.written[self.step] = time.monotonic()
            await asyncio.sleep(0.02)

    async def follow(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        seen = 0
        async for message in ws:
            step = json.loads(message.data).get("current_step")
            if isinstance(step, int) and step > seen:
                now = time.monotonic()
                # A state that skipped others stands for them: each is as late as it.
                self.delays += [now - self.written[s] for s in range(seen + 1, step + 1)]
                self.arrival.set()
                seen = step

    async def more_states(self, count: int) -> None:
        """Wait until the client has got ``count`` more states."""
        target = len(self.delays) + count
        while len(self.delays) < target:
            self.arrival.clear()
            await asyncio.wait_for(self.arrival.wait(), WAIT)


async def read_until(client: StreamClient, last_step: int) -> None:
    """Read a client of job A until its history ends at ``last_step``."""
    deadline = time.monotonic() + WAIT
    while not (client.history and client.history[-1]["step"] == last_step - 1):
        left = deadline - time.monotonic()
        assert left > 0, "the history never reached the last line"
        assert await client.next(timeout=left) is not None


@asynccontextmanager
async def other_job_running(
    session: aiohttp.ClientSession, url: str, job: OtherJob
) -> AsyncIterator[None]:
    stop = asyncio.Event()
    ws = await session.ws_connect(url.replace("http", "ws", 1) + "/ws/training/b")
    tasks = [asyncio.create_task(job.write(stop)), asyncio.create_task(job.follow(ws))]
    try:
        await job.more_states(10)  # going steadily before the flood
        job.delays.clear()
        yield
        await job.more_states(10)  # and some more states after it
    finally:
        stop.set()
        await ws.close()
        await asyncio.wait(tasks, timeout=WAIT)


async def last_entries(session: aiohttp.ClientSession, url: str, job_id: str) -> list[int]:
    async with session.get(f"{url}/api/jobs/{job_id}/history") as response:
        body: dict[str, Any] = await response.json()
    return [e["step"] for e in body["entries"]]


async def test_a_huge_append_stalls_no_other_job_and_keeps_memory_bounded(
    jobs_root: Path,
) -> None:
    write_atomic(jobs_root / "a" / "progress.json", {"status": "running"})
    first_lines, first_end = metrics_lines(0, 1000)
    (jobs_root / "a" / "metrics.jsonl").write_bytes(first_lines)
    other = OtherJob(jobs_root / "b" / "progress.json")
    write_atomic(other.file, {"status": "running"})
    flood, end = metrics_lines(1 << 20, FLOOD_BYTES)
    async with (
        sidecar_process(jobs_root, "--max-history", str(MAX_HISTORY)) as (pid, url),
        aiohttp.ClientSession() as session,
    ):
        ws = await session.ws_connect(url.replace("http", "ws", 1) + "/ws/training/a?history=1")
        client = StreamClient(ws)
        # The job's state, then its whole history so far: the flood comes after both.
        snapshot, log = await client.next(), await client.next()
        assert snapshot is not None and snapshot["type"] == "snapshot"
        assert (snapshot["job_id"], snapshot["status"]) == ("a", "running")
        assert log is not None and (log["type"], log["job_id"]) == ("log", "a")
        assert (log["epoch"], log["seq"]) == (snapshot["epoch"], snapshot["seq"])
        assert [e["step"] for e in log["entries"]] == list(range(first_end))
        async with other_job_running(session, url, other):
            before = rss_mb(pid, "VmRSS")

            def append(data: bytes = flood) -> None:
                with open(jobs_root / "a" / "metrics.jsonl", "ab") as f:
                    for i in range(0, len(data), 4 << 20):
                        f.write(data[i : i + (4 << 20)])

            await asyncio.to_thread(append)
            del flood
            await read_until(client, end)
            peak = rss_mb(pid, "VmHWM")
        await ws.close()
        kept = await last_entries(session, url, "a")
    assert max(other.delays) < MAX_DELAY, sorted(other.delays)[-5:]
    assert len(other.delays) > 10
    assert peak - before < MAX_RSS_GROWTH_MB, (before, peak)
    assert client.history is not None
    assert [e["step"] for e in client.history[-MAX_HISTORY:]] == list(range(end - MAX_HISTORY, end))
    assert kept == list(range(end - MAX_HISTORY, end))


async def test_a_first_look_at_a_huge_history_stalls_no_other_job(jobs_root: Path) -> None:
    write_atomic(jobs_root / "a" / "progress.json", {"status": "running"})
    history, end = metrics_lines(0, FLOOD_BYTES)
    (jobs_root / "a" / "metrics.jsonl").write_bytes(history)
    del history
    other = OtherJob(jobs_root / "b" / "progress.json")
    write_atomic(other.file, {"status": "running"})
    async with (
        sidecar_process(jobs_root, "--max-history", str(MAX_HISTORY)) as (pid, url),
        aiohttp.ClientSession() as session,
    ):
        async with other_job_running(session, url, other):
            before = rss_mb(pid, "VmRSS")
            ws = await session.ws_connect(url.replace("http", "ws", 1) + "/ws/training/a?history=1")
            client = StreamClient(ws)
            await read_until(client, end)
            peak = rss_mb(pid, "VmHWM")
        await ws.close()
    assert max(other.delays) < MAX_DELAY, sorted(other.delays)[-5:]
    assert peak - before < MAX_RSS_GROWTH_MB, (before, peak)
    assert client.history is not None
    assert [e["step"] for e in client.history] == list(range(end - MAX_HISTORY, end))
