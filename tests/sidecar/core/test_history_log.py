"""The history log: the newest entries kept, within a count and a byte budget."""

from __future__ import annotations

from sidecar.core.history_log import HistoryLog


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
