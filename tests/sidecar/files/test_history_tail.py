"""The tail of metrics.jsonl: pure file reading, bounded slices, backlogs, bad bytes."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.files import history_file as history_module
from sidecar.files.history_file import HistoryFileReader
from tests.sidecar.files.history import append, entry


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
