"""Lines about what others wrote to Redis come at a bounded rate, and the rest are said in one."""

from __future__ import annotations

import logging

import pytest

from sidecar.bus.rate_log import Drops, RateLimitedLog

logger = logging.getLogger("tests.rate_log")


def test_a_flood_is_a_few_lines_then_one_that_counts_the_rest(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr("sidecar.bus.rate_log.time.monotonic", lambda: now[0])
    log = RateLimitedLog(logger, interval=10, burst=3)
    with caplog.at_level(logging.INFO, logger="tests.rate_log"):
        for i in range(1000):
            log(logging.INFO, "node %s is gone", f"n{i}")
        assert [r.getMessage() for r in caplog.records] == [f"node n{i} is gone" for i in range(3)]
        now[0] += 10
        log(logging.INFO, "node %s is gone", "late")
    said = [r.getMessage() for r in caplog.records[3:]]
    assert said == ["bus: 997 more lines like the last were left out (at most 3 every 10 s)",
                    "node late is gone"]  # fmt: skip


def test_drops_are_all_counted_whatever_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    drops = Drops(logger)
    with caplog.at_level(logging.WARNING, logger="tests.rate_log"):
        for _ in range(50):
            drops("node-x", "not json")
        drops("node-x", "history entries", count=7)
    assert drops.count == 57
    assert len(caplog.records) == 5
    assert caplog.records[0].getMessage() == (
        "bus: node node-x: dropped an entry not this protocol's: not json (1 dropped in all)"
    )
