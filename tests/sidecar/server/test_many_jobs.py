"""Many jobs (issue 20, point 6): a listing of every job, or dashboards' snapshots of it, never
hold other clients up; pages walk every job once; hostile queries are refused, never a 500."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import statistics
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from tests.conftest import Sidecar, StartSidecar
from tests.helpers import raw_get, wait_for, write_atomic

JOBS = 20_000
"""Enough for the old listing to hold the event loop for 0.1 to 0.3 s (1 s at 100,000)."""
HOLD_LIMIT = 0.050


class LoopHolds:
    """The event loop's longest holds, in CPU seconds of its thread: how long it ran other work
    before coming back to a task that asked for a 1 ms nap (a machine busy with other
    processes makes waits longer, not this)."""

    def __init__(self) -> None:
        self.holds: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            began = time.thread_time()
            await asyncio.sleep(0.001)
            self.holds.append(time.thread_time() - began)

    def __enter__(self) -> LoopHolds:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@asynccontextmanager
async def health_probe(host: str, port: int) -> AsyncIterator[list[float]]:
    """Another client, in a thread of its own: ``GET /healthz`` on a fresh connection, again and
    again; the round trips (s) of those that answered 200."""
    trips: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        request = f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
        while not stop.is_set():
            began = time.monotonic()
            with socket.create_connection((host, port), timeout=30) as s:
                s.sendall(request.encode())
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
            trips.append(time.monotonic() - began)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        yield trips
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 60)  # the sidecar answers its last request


def many_jobs(root: Path, count: int) -> None:
    """``count`` job directories, most of them pending; every thousandth one running."""
    for j in range(count):
        if j % 1000:
            (root / f"job{j:05d}").mkdir()
        else:
            write_atomic(root / f"job{j:05d}" / "progress.json", {"status": "running", "step": j})


async def snapshot(sidecar: Sidecar) -> str:
    """A dashboard's first message (parsed later: parsing 3 MB would hold this event loop,
    which the sidecar under test shares)."""
    url = sidecar.ws_url("x").replace("/ws/training/x", "/ws/jobs")
    async with sidecar.session.ws_connect(url, max_msg_size=0) as ws:
        message = await ws.receive(timeout=60)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        return str(message.data)


async def test_a_listing_of_every_job_holds_no_other_client_up(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """20,000 jobs: ``GET /api/jobs`` of every one and three dashboards' snapshots at once never
    hold the event loop 50 ms (the old listing held it for the whole of its making, 0.2 s and
    more; one snapshot as long); meanwhile another client keeps being answered; every answer
    holds every job."""
    many_jobs(jobs_root, JOBS)
    sidecar = await start_sidecar()
    # What start-up loaded is out of the collector's way (a full collection walked it all).
    assert gc.get_freeze_count() >= JOBS
    host, port = sidecar.server.host, sidecar.server.port
    assert isinstance(port, int)
    with LoopHolds() as loop:
        async with health_probe(host, port) as trips:
            began = time.monotonic()
            async with sidecar.session.get(sidecar.url("/api/jobs")) as response:
                listing = await response.read()
            snapshots = await asyncio.gather(*(snapshot(sidecar) for _ in range(3)))
            answered, took = len(trips), time.monotonic() - began
    holds = sorted(loop.holds)
    assert holds[-1] < HOLD_LIMIT, f"the event loop was held {holds[-1] * 1000:.0f} ms"
    # In this process, the probe's thread also waits for the interpreter lock: twice the limit.
    # It is answered all along: once every 2 limits at least (the three snapshots are made once
    # for the three dashboards, so the work may be short: its length is not the point).
    assert answered >= max(1, took / (2 * HOLD_LIMIT)), f"{answered} answers in {took:.2f} s"
    assert statistics.median(trips) < 2 * HOLD_LIMIT, (
        f"{answered} health checks, {statistics.median(trips) * 1000:.0f} ms at the median, "
        f"{max(trips) * 1000:.0f} ms at worst"
    )
    jobs = json.loads(listing)["jobs"]
    assert [job["job_id"] for job in jobs] == [f"job{j:05d}" for j in range(JOBS)]
    assert jobs[1] == {
        "job_id": "job00001",
        "node": jobs[1]["node"],
        "status": "pending",
        "progress": None,
        "complete": False,
        "stalled": False,
        "updated_at": jobs[1]["updated_at"],
    }
    for text in snapshots:
        message = json.loads(text)
        assert message["type"] == "snapshot"
        assert len(message["jobs"]) == JOBS
        assert message["jobs"]["job01000"]["status"] == "running"
        assert "progress" not in message["jobs"]["job00001"]  # the stream leaves nulls out


async def test_pages_walk_every_job_once_while_jobs_come_and_go(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """``?limit=`` pages, each giving the cursor (``next``) for ``?after=``: every job there
    all along comes once, in order; one added ahead of the cursor comes, one removed ahead does
    not; the last page has no ``next``. ``?status=`` narrows the walk."""
    for j in range(0, 500, 2):
        status = "running" if j % 10 == 0 else "queued"
        write_atomic(jobs_root / f"job{j:03d}" / "progress.json", {"status": status})
    sidecar = await start_sidecar()
    seen: list[str] = []
    target = "/api/jobs?limit=100"
    pages = 0
    while True:
        status, body = await sidecar.get_json(target)
        assert status == 200, body
        assert len(body["jobs"]) <= 100
        seen += [job["job_id"] for job in body["jobs"]]
        pages += 1
        if pages == 1:
            write_atomic(jobs_root / "job401" / "progress.json", {"status": "queued"})
            write_atomic(jobs_root / "job001" / "progress.json", {"status": "queued"})
            write_atomic(jobs_root / "job300" / "progress.json", {"status": "completed"})
            (jobs_root / "job450" / "progress.json").unlink()
            (jobs_root / "job450").rmdir()
            await _until_listed(sidecar, present={"job401", "job001"}, gone={"job450"})
        if "next" not in body:
            break
        assert body["next"] == seen[-1]
        target = f"/api/jobs?limit=100&after={body['next']}"
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    expected = {f"job{j:03d}" for j in range(0, 500, 2)} - {"job450"} | {"job401"}
    assert set(seen) == expected  # job001 came behind the cursor: the next walk has it
    assert pages == 3
    status, body = await sidecar.get_json("/api/jobs?status=running&limit=20")
    assert [job["job_id"] for job in body["jobs"]] == [f"job{j:03d}" for j in range(0, 200, 10)]
    assert body["next"] == "job190"
    status, body = await sidecar.get_json("/api/jobs?status=running&status=completed&after=job190")
    assert [job["job_id"] for job in body["jobs"]] == [
        f"job{j:03d}" for j in range(200, 500, 10) if j != 450
    ]
    assert "next" not in body


async def _until_listed(sidecar: Sidecar, *, present: set[str], gone: set[str]) -> None:
    async def listed() -> bool:
        _, body = await sidecar.get_json("/api/jobs")
        ids = {job["job_id"] for job in body["jobs"]}
        return present <= ids and not gone & ids

    await wait_for(listed, timeout=5, what="the sidecar to see the changes")


async def test_hostile_jobs_queries_are_refused_never_a_500(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """Bad ``limit``, ``after`` or ``status``: 400 with a short lowercase reason; parameters the
    listing does not know are not looked at; nothing a query says makes a 500."""
    write_atomic(jobs_root / "a" / "progress.json", {"status": "running"})
    sidecar = await start_sidecar()
    host, port = sidecar.server.host, sidecar.server.port
    assert isinstance(port, int)
    refused = {
        "limit=0": "invalid limit",
        "limit=-1": "invalid limit",
        "limit=1e3": "invalid limit",
        "limit=99999999999999999999": "invalid limit",
        "limit=%EF%BC%95": "invalid limit",  # a fullwidth 5
        "limit=": "invalid limit",
        "limit=1&limit=2": "invalid limit",
        "limit=%00": "invalid limit",
        "after=": "invalid cursor",
        "after=..%2F..%2Fetc": "invalid cursor",
        "after=%FF%FE": "invalid cursor",
        "after=%ED%A0%80": "invalid cursor",
        "after=" + "a" * 300: "invalid cursor",
        "after=a&after=b": "invalid cursor",
        "status=": "invalid status",
        "status=" + "x" * 200: "invalid status",
        "&".join(["status=running"] * 40): "invalid status",
    }
    for query, reason in refused.items():
        answer = await raw_get(host, port, f"/api/jobs?{query}")
        assert (answer.status, json.loads(answer.body)) == (400, {"error": reason}), query
    for query in ("status=%ED%A0%80", "status=%FF", "status=%00", "limit=1&x=%FF", "token=1"):
        answer = await raw_get(host, port, f"/api/jobs?{query}")
        assert answer.status == 200, query
        assert isinstance(json.loads(answer.body)["jobs"], list), query
    answer = await raw_get(host, port, "/api/jobs?" + "&".join(f"k{i}=v" for i in range(900)))
    assert answer.status < 500
