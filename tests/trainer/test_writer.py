from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from sidecar.core.contract import strict_json
from trainer.writer import ProgressWriter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def read(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def test_first_write_is_immediate_then_throttled(tmp_path: Path) -> None:
    clock = Clock()
    writer = ProgressWriter(tmp_path / "job", min_interval=0.5, clock=clock)
    assert writer.write({"status": "running", "step": 1})
    assert not writer.write({"status": "running", "step": 2})
    assert read(writer.path)["step"] == 1
    clock.now += 0.5
    assert writer.write({"status": "running", "step": 3})
    assert read(writer.path)["step"] == 3


def test_terminal_state_is_written_at_once(tmp_path: Path) -> None:
    writer = ProgressWriter(tmp_path, min_interval=60, clock=Clock())
    writer.write({"status": "running"})
    assert writer.write({"status": "Failed", "error": "boom"})
    assert read(writer.path) == {"status": "Failed", "error": "boom"}


def test_flush_writes_the_held_state(tmp_path: Path) -> None:
    writer = ProgressWriter(tmp_path, min_interval=60, clock=Clock())
    writer.write({"step": 1})
    writer.write({"step": 2})
    writer.write({"step": 3})
    assert writer.flush()
    assert read(writer.path) == {"step": 3}
    assert not writer.flush()


def test_nan_and_infinity_are_written_as_null(tmp_path: Path) -> None:
    writer = ProgressWriter(tmp_path)
    writer.write({"loss": math.nan, "nested": {"x": math.inf, "y": [-math.inf, 1.5]}})
    text = writer.path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"loss": None, "nested": {"x": None, "y": [None, 1.5]}}


def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    writer = ProgressWriter(tmp_path, min_interval=0)
    for step in range(50):
        writer.write({"step": step, "padding": "x" * 1000})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress.json"]
    assert read(writer.path)["step"] == 49


def test_a_failed_write_never_raises_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "job"
    blocker.write_text("a file where the job directory should be")
    writer = ProgressWriter(blocker, min_interval=0)
    with caplog.at_level(logging.WARNING, logger="trainer.writer"):
        for step in range(5):
            assert not writer.write({"step": step})
        assert not writer.append_history({"step": 1})
    assert len(caplog.records) == 1
    assert "training goes on" in caplog.records[0].getMessage()
    assert blocker.read_text() == "a file where the job directory should be"


def test_history_lines_are_appended_whole(tmp_path: Path) -> None:
    writer = ProgressWriter(tmp_path)
    writer.append_history({"step": 1, "loss": 2.0})
    writer.append_history({"step": 2, "loss": math.nan})
    writer.close()
    lines = writer.history_path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"step": 1, "loss": 2.0},
        {"step": 2, "loss": None},
    ]


def test_strict_json_keeps_other_values() -> None:
    assert strict_json({"a": (1, 2.5, "x", None, True)}) == {"a": [1, 2.5, "x", None, True]}
