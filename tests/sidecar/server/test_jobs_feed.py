"""/ws/jobs with many dashboards: one list made per tick, the same bytes for every dashboard,
and a dashboard that fell behind brought back with a snapshot."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.core.patch import apply_merge_patch
from sidecar.server import jobs_feed
from sidecar.server.keys import HUB, SUPERVISOR
from tests.conftest import Sidecar, StartSidecar
from tests.helpers import silent_client, wait_for, write_atomic
from tests.sidecar.server.test_metrics import scrape

DASHBOARDS = 30
JOBS = 10


def list_url(sidecar: Sidecar) -> str:
    return sidecar.ws_url("x").replace("/ws/training/x", "/ws/jobs")


async def listing(sidecar: Sidecar) -> dict[str, Any]:
    status, body = await sidecar.get_json("/api/jobs")
    assert status == 200
    # The stream leaves out what is null; the listing says it.
    return {job["job_id"]: {k: v for k, v in job.items() if v is not None} for job in body["jobs"]}


async def test_every_dashboard_gets_the_same_messages_made_once(
    jobs_root: Path, start_sidecar: StartSidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    for j in range(JOBS):
        write_atomic(
            jobs_root / f"job{j}" / "progress.json", {"status": "running", "current_step": 0}
        )
    patches = 0
    merge_patch = jobs_feed.merge_patch

    def counted(before: Any, now: Any) -> Any:
        nonlocal patches
        patches += 1
        return merge_patch(before, now)

    monkeypatch.setattr(jobs_feed, "merge_patch", counted)
    sidecar = await start_sidecar(max_clients_per_address=DASHBOARDS)
    sockets = [await sidecar.session.ws_connect(list_url(sidecar)) for _ in range(DASHBOARDS)]
    texts: list[dict[int, str]] = [{} for _ in sockets]
    lists: list[dict[str, Any]] = [{} for _ in sockets]

    async def follow(i: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            data = json.loads(message.data)
            texts[i][data["seq"]] = message.data
            lists[i] = apply_merge_patch(lists[i], data["jobs"])

    followers = [asyncio.create_task(follow(i, ws)) for i, ws in enumerate(sockets)]
    writes = 0
    for step in range(1, 21):
        for j in range(0, JOBS, 2):
            write_atomic(
                jobs_root / f"job{j}" / "progress.json",
                {"status": "running", "current_step": step, "progress": step * 2.0},
            )
            writes += 1
        await asyncio.sleep(0.03)
    expected = await listing(sidecar)
    assert expected["job8"]["current_step"] == 20
    await wait_for(lambda: all(seen == expected for seen in lists), what="every dashboard's list")
    # One merge patch per job that changed, per tick, whatever the number of dashboards.
    assert 0 < patches <= writes
    seqs = set().union(*texts)
    assert len(seqs) > 3
    for seq in seqs:
        assert len({t[seq] for t in texts if seq in t}) == 1, f"message {seq} differs"
    metrics = await scrape(sidecar)
    assert metrics["sidecar_messages_sent_total{type=jobs_patch}"] >= DASHBOARDS * 3
    for follower in followers:
        follower.cancel()
    for ws in sockets:
        await ws.close()
    await wait_for(lambda: not sidecar.app[HUB].list_feed.viewers, what="the dashboards to leave")


async def read_message(reader: asyncio.StreamReader) -> bytes:
    """One whole text message from a server (unmasked frames, fragments joined, control frames
    skipped)."""
    parts: list[bytes] = []
    while True:
        first, second = await reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(await reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await reader.readexactly(8), "big")
        payload = await reader.readexactly(length)
        if first & 0x0F >= 0x8:  # ping, pong, close
            continue
        parts.append(payload)
        if first & 0x80:
            return b"".join(parts)


async def test_a_dashboard_that_fell_behind_is_brought_back_by_a_snapshot(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """A dashboard that reads nothing while the list moves past what is kept gets the latest
    snapshot when it reads again, then the patches that follow it: its list ends as the
    sidecar's."""
    file = jobs_root / "a" / "progress.json"
    write_atomic(file, {"status": "running", "current_step": 0})
    sidecar = await start_sidecar(send_timeout=60)
    feed = sidecar.app[HUB].list_feed
    feed.max_kept = 2
    writer = await silent_client(sidecar.server.host, sidecar.server.port, path="/ws/jobs")
    await wait_for(lambda: len(feed.viewers) == 1 and next(iter(feed.viewers)).seq is not None,
                   what="the snapshot to go out")  # fmt: skip
    viewer = next(iter(feed.viewers))
    step = 0
    while not viewer.busy or feed.seq < (viewer.seq or 0) + 5:
        step += 1
        assert step < 3000, "the dashboard never fell behind"
        # Large summaries (the status is in them) fill the silent dashboard's buffers fast.
        write_atomic(file, {"status": f"running {step:06d}" + "x" * 200_000, "current_step": step})
        await asyncio.sleep(0.02)
    write_atomic(file, {"status": "running", "current_step": step + 1})
    transport = writer.transport
    assert isinstance(transport, asyncio.ReadTransport)
    reader: asyncio.StreamReader = transport.get_protocol()._stream_reader  # type: ignore[attr-defined]
    transport.resume_reading()
    jobs: dict[str, Any] = {}
    kinds, seq = [], None
    async with asyncio.timeout(20):
        while not (feed.up_to_date and seq == feed.seq):
            message = json.loads(await read_message(reader))
            kinds.append(message["type"])
            if message["type"] == "snapshot":
                jobs = message["jobs"]
            else:
                assert message["seq"] == seq + 1  # patches follow one another, from a snapshot
                jobs = apply_merge_patch(jobs, message["jobs"])
            seq = message["seq"]
    assert kinds[0] == "snapshot" and "snapshot" in kinds[1:], kinds
    assert jobs == await listing(sidecar)
    writer.close()


async def test_a_tick_that_fails_leaves_no_job_out_of_date(
    jobs_root: Path, start_sidecar: StartSidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task is started again, and folds the jobs of the failed tick with the next: every
    dashboard's list, and the snapshot of one that comes after, are the sidecar's."""
    file = jobs_root / "a" / "progress.json"
    write_atomic(file, {"status": "running", "current_step": 0})
    sidecar = await start_sidecar()
    async with sidecar.session.ws_connect(list_url(sidecar)) as ws:
        jobs: dict[str, Any] = (await ws.receive_json(timeout=5))["jobs"]
        merge_patch = jobs_feed.merge_patch
        failed: list[bool] = []

        def failing_once(before: Any, now: Any) -> Any:
            if not failed:
                failed.append(True)
                raise RuntimeError("a tick's fault")
            return merge_patch(before, now)

        monkeypatch.setattr(jobs_feed, "merge_patch", failing_once)
        write_atomic(file, {"status": "running", "current_step": 7})
        while jobs["a"].get("current_step") != 7:
            jobs = apply_merge_patch(jobs, (await ws.receive_json(timeout=10))["jobs"])
        assert failed
        assert jobs == await listing(sidecar)
    async with sidecar.session.ws_connect(list_url(sidecar)) as later:
        snapshot = await later.receive_json(timeout=5)
        assert snapshot["jobs"] == await listing(sidecar)
    assert sidecar.app[SUPERVISOR].restarts["jobs-list"] == 1
