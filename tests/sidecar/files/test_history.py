"""metrics.jsonl: the tail (pure file reading) and the history stream over WebSocket and REST."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.core.history_log import HistoryLog
from sidecar.files import history_file as history_module
from sidecar.files.history_file import HistoryFileReader
from sidecar.server.keys import HUB
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


def tail_of(path: Path, *, max_entries: int = 10_000) -> HistoryFileReader:
    return HistoryFileReader(path.parent, path, "j", max_entries=max_entries)


def read_all(tail: HistoryFileReader, **bounds: int) -> tuple[list[dict[str, Any]], int]:
    """Read until nothing more waits; the entries, and how many reads it took."""
    entries, reads = [], 0
    while True:
        read = tail.read(**bounds)
        entries += decoded(read.entries)
        reads += 1
        if not read.more:
            return entries, reads


def test_tail_reads_only_appended_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    tail = tail_of(path)
    assert tail.read() == ([], False, False)
    append(path, entry(1, loss=2.0) + entry(2, loss=1.5))
    entries, reset, _ = tail.read()
    assert (decoded(entries), reset) == (
        [json.loads(entry(1, loss=2.0)), json.loads(entry(2, loss=1.5))],
        False,
    )
    append(path, '{"step": 3, "lo')
    assert tail.read() == ([], False, False)  # a partial line waits for its newline
    append(path, 'ss": 1.0}\n')
    assert decoded(tail.read()[0]) == [{"step": 3, "loss": 1.0}]
    assert tail.read() == ([], False, False)


def test_tail_starts_over_when_the_file_is_truncated_or_replaced(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    append(path, entry(1) + entry(2))
    tail = tail_of(path)
    assert len(tail.read()[0]) == 2
    path.write_text(entry(9))
    entries, reset, _ = tail.read()
    assert reset and decoded(entries)[0]["step"] == 9
    replacement = tmp_path / "new"
    replacement.write_text(entry(10) + entry(11) + entry(12))
    os.replace(replacement, path)
    entries, reset, _ = tail.read()
    assert reset and [e["step"] for e in decoded(entries)] == [10, 11, 12]
    path.unlink()
    assert tail.read() == ([], True, False)


def test_tail_skips_bad_lines_says_so_once_and_makes_them_strict(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "metrics.jsonl"
    append(path, "not json\n[1, 2]\n" + '{"step": 1, "loss": NaN}\n' + "\n")
    tail = tail_of(path)
    with caplog.at_level(logging.WARNING, logger="sidecar.files.history_file"):
        entries, _, _ = tail.read()
    assert entries == [b'{"step":1,"loss":null}']
    assert len(caplog.records) == 1
    assert "job j" in caplog.records[0].getMessage()


def test_tail_reads_a_bounded_slice_at_a_time(tmp_path: Path) -> None:
    """Each read parses at most max_lines lines out of at most max_bytes bytes, and says
    whether more waits; together the reads give every line once, in order."""
    path = tmp_path / "metrics.jsonl"
    append(path, "".join(entry(i) for i in range(100)))
    tail = tail_of(path)
    first = tail.read(max_lines=30)
    assert [e["step"] for e in decoded(first.entries)] == list(range(30)) and first.more
    line = len(entry(50))
    second = tail.read(max_bytes=3 * line + 5)
    assert [e["step"] for e in decoded(second.entries)] == [30, 31, 32] and second.more
    rest, reads = read_all(tail, max_lines=30)
    assert [e["step"] for e in rest] == list(range(33, 100)) and reads == 3
    assert tail.read() == ([], False, False)


def test_tail_skips_a_backlog_to_its_last_lines_without_parsing_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """More waiting than one slice: only the last max_entries lines are read, at the first
    look as later; what lies before them is never parsed (its bad lines go unreported), and a
    skip of appended lines is said once."""
    path = tmp_path / "metrics.jsonl"
    append(path, "not json\n" * 50 + "".join(entry(i) for i in range(1000)) + '{"step": 10')
    tail = tail_of(path, max_entries=10)
    with caplog.at_level(logging.WARNING, logger="sidecar.files.history_file"):
        entries, reads = read_all(tail, max_bytes=4096)
        assert [e["step"] for e in entries] == list(range(990, 1000)) and reads == 1
        assert caplog.records == []  # the first look reads the end: nothing to say
        append(path, "00}\n" + "not json\n" * 50 + "".join(entry(i) for i in range(1001, 3000)))
        entries, _ = read_all(tail, max_bytes=4096)
        assert [e["step"] for e in entries] == list(range(2990, 3000))
        append(path, "".join(entry(i) for i in range(3000, 6000)))
        entries, _ = read_all(tail, max_bytes=4096)
        assert [e["step"] for e in entries] == list(range(5990, 6000))
    skipped = '{"step": 1000}\n' + "not json\n" * 50 + "".join(entry(i) for i in range(1001, 2990))
    assert [r.getMessage() for r in caplog.records] == [
        f"job j: {path}: {len(skipped)} bytes appended at once skipped unread: only the last "
        "10 lines (at most 16777216 bytes) are kept (said once per job)"
    ]


def test_tail_scans_a_backlog_a_bounded_step_per_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan for where the last lines start goes on over several reads when it is long:
    each counts at most SCAN_STEP_BYTES, reads nothing, and says that more waits."""
    monkeypatch.setattr(history_module, "SCAN_STEP_BYTES", 1024)
    path = tmp_path / "metrics.jsonl"
    append(path, "".join(entry(i) for i in range(1000)))
    tail = tail_of(path, max_entries=100)
    reads = [tail.read(max_bytes=512) for _ in range(len(entry(950)) * 100 // 1024)]
    assert all(read == ([], False, True) for read in reads)
    entries, _ = read_all(tail, max_bytes=512)
    assert [e["step"] for e in entries] == list(range(900, 1000))


def test_tail_skips_to_lines_within_the_byte_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Long lines: what the history keeps is capped in bytes too, and so is what is read of
    a backlog; the first line read is a whole one."""
    monkeypatch.setattr(history_module, "MAX_BYTES", 1000)
    path = tmp_path / "metrics.jsonl"
    append(path, "".join(entry(i) for i in range(100)))
    entries, _ = read_all(tail_of(path), max_bytes=500)
    steps = [e["step"] for e in entries]
    assert steps == list(range(100 - len(steps), 100))
    assert len(steps) == 1000 // len(entry(50))


def test_tail_drops_a_line_longer_than_a_slice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "metrics.jsonl"
    append(path, entry(1) + '{"x": "' + "y" * 1000 + '"}\n' + entry(2))
    with caplog.at_level(logging.WARNING, logger="sidecar.files.history_file"):
        entries, _ = read_all(tail_of(path), max_bytes=300)
    assert [e["step"] for e in entries] == [1, 2]
    assert ["longer than 300 bytes" in r.getMessage() for r in caplog.records] == [True]


def test_tail_follows_no_symlink(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A metrics.jsonl that is a symlink, or lies in a job directory that is one, is not read;
    the first is said once."""
    root = tmp_path / "jobs"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    append(elsewhere / "metrics.jsonl", entry(1))
    (root / "a").mkdir(parents=True)
    (root / "a" / "metrics.jsonl").symlink_to(elsewhere / "metrics.jsonl")
    (root / "b").symlink_to(elsewhere)
    with caplog.at_level(logging.WARNING, logger="sidecar.files.history_file"):
        a = HistoryFileReader(root, root / "a" / "metrics.jsonl", "a")
        assert a.read() == a.read() == ([], False, False)
        b = HistoryFileReader(root, root / "b" / "metrics.jsonl", "b")
        assert b.read() == ([], False, False)
    assert [r.getMessage() for r in caplog.records] == [
        f"job a: {root / 'a' / 'metrics.jsonl'}: a symlink; not followed (said once per job)"
    ]


def test_tail_ignores_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "metrics.jsonl")
    assert tail_of(tmp_path / "metrics.jsonl").read() == ([], False, False)


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


def test_history_log_keeps_at_most_its_bytes() -> None:
    log = HistoryLog(max_entries=100, max_bytes=10)
    log.extend([b"aaaa"] * 5)
    assert (list(log.entries), log.size, log.total) == ([b"aaaa"] * 2, 8, 5)
    log.extend([b"b" * 11])  # larger than the budget alone: not kept
    assert (list(log.entries), log.size, log.since(5)) == ([], 0, [])


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


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(
    st.lists(
        st.binary(max_size=80)
        | st.sampled_from(
            [
                b'{"note": "\\ud800"}',
                b'{"a":' * 70 + b"1" + b"}" * 70,
                b'{"step": 1}], "type": "snapshot", "x": [{"a": 1}',
                b'{"n": ' + b"9" * 5000 + b"}",
            ]
        ),
        max_size=8,
    )
)
def test_any_appended_bytes_give_only_strict_json_objects(
    tmp_path: Path, lines: list[bytes]
) -> None:
    """Issue 20: whatever is appended to metrics.jsonl, the tail returns objects that encode as
    strict UTF-8 JSON (lone surrogates replaced), and never raises."""
    path = tmp_path / "j" / "metrics.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")
    read = HistoryFileReader(tmp_path, path, "j").read()
    for data in read.entries:
        value = json.loads(data.decode("utf-8"), parse_constant=_refuse)
        assert isinstance(value, dict)


def _refuse(name: str) -> None:
    raise AssertionError(name)
