"""metrics.jsonl: the tail (pure file reading) and the history stream over WebSocket and REST."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from sidecar import history as history_module
from sidecar.history import HistoryLog, HistoryTail
from tests.conftest import StartSidecar
from tests.helpers import wait_for, write_atomic


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def entry(step: int, **metrics: Any) -> str:
    return (
        json.dumps(
            {"step": step, "epoch": step / 10, "timestamp": "2025-11-06T12:30:00Z", **metrics}
        )
        + "\n"
    )


def decoded(entries: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(e) for e in entries]


def test_tail_reads_only_appended_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    tail = HistoryTail(path, "j")
    assert tail.read() == ([], False)
    append(path, entry(1, loss=2.0) + entry(2, loss=1.5))
    entries, reset = tail.read()
    assert (decoded(entries), reset) == (
        [json.loads(entry(1, loss=2.0)), json.loads(entry(2, loss=1.5))],
        False,
    )
    append(path, '{"step": 3, "lo')
    assert tail.read() == ([], False)  # a partial line waits for its newline
    append(path, 'ss": 1.0}\n')
    assert decoded(tail.read()[0]) == [{"step": 3, "loss": 1.0}]
    assert tail.read() == ([], False)


def test_tail_starts_over_when_the_file_is_truncated_or_replaced(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    append(path, entry(1) + entry(2))
    tail = HistoryTail(path, "j")
    assert len(tail.read()[0]) == 2
    path.write_text(entry(9))
    entries, reset = tail.read()
    assert reset and decoded(entries)[0]["step"] == 9
    replacement = tmp_path / "new"
    replacement.write_text(entry(10) + entry(11) + entry(12))
    os.replace(replacement, path)
    entries, reset = tail.read()
    assert reset and [e["step"] for e in decoded(entries)] == [10, 11, 12]
    path.unlink()
    assert tail.read() == ([], True)


def test_tail_skips_bad_lines_says_so_once_and_makes_them_strict(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "metrics.jsonl"
    append(path, "not json\n[1, 2]\n" + '{"step": 1, "loss": NaN}\n' + "\n")
    tail = HistoryTail(path, "j")
    with caplog.at_level(logging.WARNING, logger="sidecar.history"):
        entries, _ = tail.read()
    assert entries == [b'{"step":1,"loss":null}']
    assert len(caplog.records) == 1
    assert "job j" in caplog.records[0].getMessage()


def test_tail_reads_only_the_end_of_a_huge_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_module, "MAX_INITIAL_BYTES", 1000)
    path = tmp_path / "metrics.jsonl"
    append(path, "".join(entry(i) for i in range(100)))
    entries = decoded(HistoryTail(path, "j").read()[0])
    assert entries[-1]["step"] == 99
    assert 5 < len(entries) < 20
    assert [e["step"] for e in entries] == list(range(100 - len(entries), 100))


def test_tail_ignores_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "metrics.jsonl")
    assert HistoryTail(tmp_path / "metrics.jsonl", "j").read() == ([], False)


def test_history_log_keeps_the_newest_and_knows_what_is_unseen() -> None:
    log = HistoryLog(max_entries=3)
    log.extend([b"1", b"2"])
    assert log.since(0) == [b"1", b"2"]
    log.extend([b"3", b"4", b"5"])
    assert list(log.entries) == [b"3", b"4", b"5"] and log.total == 5
    assert log.since(2) == [b"3", b"4", b"5"]
    assert log.since(4) == [b"5"]
    assert log.since(5) == []
    log.reset([b"a"])
    assert (log.generation, log.total, log.since(0)) == (1, 1, [b"a"])


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
