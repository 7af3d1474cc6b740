"""The history of metrics.jsonl served over WebSocket and REST, and its reading tasks."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from sidecar.server.keys import HUB
from tests.conftest import StartSidecar
from tests.helpers import wait_for, write_atomic
from tests.sidecar.files.history import append, entry


async def test_history_over_websocket(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    job = jobs_root / "j"
    write_atomic(job / "progress.json", {"status": "running", "current_step": 2})
    append(job / "metrics.jsonl", entry(1, loss=2.0) + entry(2, loss=1.8))
    sidecar = await start_sidecar()
    client = await sidecar.connect("j", "history=1")
    snapshot = await client.next()
    log = await client.next()
    assert snapshot is not None and log is not None
    assert (snapshot["type"], log["type"]) == ("snapshot", "log")
    assert {"job_id", "seq", "timestamp"} <= log.keys() and log["seq"] == snapshot["seq"]
    assert [e["loss"] for e in log["entries"]] == [2.0, 1.8]
    append(job / "metrics.jsonl", entry(3, loss=1.5))
    batch = await client.next()
    assert batch is not None and batch["type"] == "log"
    assert [e["step"] for e in batch["entries"]] == [3]
    append(job / "metrics.jsonl", entry(4, eval_loss=1.4) + '{"step": 5,')
    batch = await client.next()
    assert batch is not None and [e["step"] for e in batch["entries"]] == [4]
    append(job / "metrics.jsonl", ' "loss": 1.2}\n')
    batch = await client.next()
    assert batch is not None and batch["entries"] == [{"step": 5, "loss": 1.2}]
    # Final entries come before the final state and the close.
    append(job / "metrics.jsonl", entry(6, train_loss=1.1))
    write_atomic(job / "progress.json", {"status": "completed", "final_loss": 1.1})
    assert await client.closed() == 1000
    assert client.history is not None and [e["step"] for e in client.history] == [1, 2, 3, 4, 5, 6]
    assert client.state is not None and client.state["complete"] is True


async def test_history_starts_empty_and_follows_a_new_file(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running"})
    sidecar = await start_sidecar()
    client = await sidecar.connect("j", "history=1")
    await client.next()
    first = await client.next()
    assert first is not None and (first["type"], first["entries"]) == ("log", [])
    append(jobs_root / "j" / "metrics.jsonl", entry(1, loss=3.0))
    await wait_for(
        lambda: client.history is not None and len(client.history) == 0, what="empty history"
    )
    batch = await client.next()
    assert batch is not None and batch["entries"][0]["loss"] == 3.0


async def test_a_rewritten_history_is_sent_again_with_reset(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    job = jobs_root / "j"
    write_atomic(job / "progress.json", {"status": "running"})
    append(job / "metrics.jsonl", entry(1) + entry(2))
    sidecar = await start_sidecar()
    client = await sidecar.connect("j", "history=1")
    await client.next()
    await client.next()
    (job / "metrics.jsonl").write_text(entry(7))  # truncates, then writes: maybe two batches
    while client.history is None or [e["step"] for e in client.history] != [7]:
        assert await client.next() is not None
    assert any(m.get("reset") is True for m in client.messages if m["type"] == "log")


async def test_without_history_no_log_messages(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    job = jobs_root / "j"
    write_atomic(job / "progress.json", {"status": "running", "current_step": 1})
    append(job / "metrics.jsonl", entry(1))
    sidecar = await start_sidecar()
    client = await sidecar.connect("j")
    await client.next()
    append(job / "metrics.jsonl", entry(2))
    write_atomic(job / "progress.json", {"status": "running", "current_step": 2})
    await client.until(lambda s: s.get("current_step") == 2)
    assert [m["type"] for m in client.messages] == ["snapshot", "patch"]


async def test_history_over_rest(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    job = jobs_root / "j"
    write_atomic(job / "progress.json", {"status": "running"})
    append(job / "metrics.jsonl", entry(1, loss=2.0))
    sidecar = await start_sidecar()
    status, body = await sidecar.get_json("/api/jobs/j/history")
    assert status == 200
    assert body == {"job_id": "j", "entries": [json.loads(entry(1, loss=2.0))]}
    append(job / "metrics.jsonl", entry(2, loss=1.0))

    async def two() -> bool:
        return len((await sidecar.get_json("/api/jobs/j/history"))[1]["entries"]) == 2

    await wait_for(two, what="the appended entry")
    assert await sidecar.get_json("/api/jobs/nope/history") == (404, {"error": "unknown job"})
    assert await sidecar.get_json("/api/jobs/-x/history") == (400, {"error": "invalid job id"})


async def test_invalid_history_parameter(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running"})
    sidecar = await start_sidecar()
    client = await sidecar.connect("j", "history=yes")
    message = await client.ws.receive(timeout=5)
    assert (message.data, message.extra) == (4400, "invalid history: use 0 or 1")


async def test_max_history_keeps_the_newest_entries(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    job = jobs_root / "j"
    write_atomic(job / "progress.json", {"status": "running"})
    append(job / "metrics.jsonl", "".join(entry(step) for step in range(1, 6)))
    sidecar = await start_sidecar(max_history=2)
    _, body = await sidecar.get_json("/api/jobs/j/history")
    assert [e["step"] for e in body["entries"]] == [4, 5]


def history_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("history ")]


async def test_a_long_history_comes_whole_before_the_final_state(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """Lines appended just before the final state, many slices of them: a client still gets
    them all before that state and the close."""
    job = jobs_root / "j"
    write_atomic(job / "progress.json", {"status": "running"})
    append(job / "metrics.jsonl", entry(0))
    sidecar = await start_sidecar()
    client = await sidecar.connect("j", "history=1")
    await client.next()
    await client.next()
    append(job / "metrics.jsonl", "".join(entry(i) for i in range(1, 5000)))
    write_atomic(job / "progress.json", {"status": "completed"})
    assert await client.closed() == 1000
    assert client.history is not None
    assert [e["step"] for e in client.history] == list(range(5000))
    assert client.state is not None and client.state["complete"] is True


async def test_rest_history_waits_for_a_long_history_to_load(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    job = jobs_root / "j"
    write_atomic(job / "progress.json", {"status": "running"})
    append(job / "metrics.jsonl", "".join(entry(i) for i in range(3000)))
    sidecar = await start_sidecar()
    status, body = await sidecar.get_json("/api/jobs/j/history")
    assert status == 200 and [e["step"] for e in body["entries"]] == list(range(3000))


async def test_history_reading_stops_with_its_job_and_with_the_sidecar(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """No task reading a history outlives its job, nor the sidecar."""
    lines = "".join(entry(i) for i in range(100_000))
    for job_id in ("a", "b"):
        write_atomic(jobs_root / job_id / "progress.json", {"status": "running"})
        append(jobs_root / job_id / "metrics.jsonl", lines)
    sidecar = await start_sidecar(max_history=100_000)
    for job_id in ("a", "b"):
        client = await sidecar.connect(job_id, "history=1")
        await client.next()
    assert len(history_tasks()) == 2
    shutil.rmtree(jobs_root / "a")
    await wait_for(lambda: "a" not in sidecar.app[HUB], what="job a to go")
    assert [t.get_name() for t in history_tasks()] == ["history b"]
    await sidecar.server.close()
    assert history_tasks() == []
