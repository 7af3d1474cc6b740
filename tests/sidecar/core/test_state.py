from __future__ import annotations

import pytest

from sidecar.core.state import (
    JobState,
    is_terminal,
    isoformat_utc,
    pending_state,
    stall_reason,
    with_document,
    with_read_error,
    with_stall,
)

T0 = 1_762_432_200.0  # 2025-11-06T12:30:00Z


def running(**fields: object) -> JobState:
    return with_document(
        "j", {"status": "running", **fields}, modified_at=T0, now=T0, stall_after=60
    )


@pytest.mark.parametrize(
    "status", ["completed", "failed", "cancelled", "canceled", "stopped", "error", "FAILED"]
)
def test_terminal_statuses(status: str) -> None:
    assert is_terminal(status)


@pytest.mark.parametrize("status", ["running", "pending", "", None, 1, ["completed"]])
def test_other_statuses_are_not_terminal(status: object) -> None:
    assert not is_terminal(status)


def test_body_passes_the_file_through_and_adds_derived_keys() -> None:
    body = running(progress=45.5, loss=0.234, nested={"a": 1}).body()
    assert body == {
        "status": "running",
        "progress": 45.5,
        "loss": 0.234,
        "nested": {"a": 1},
        "job_id": "j",
        "node": "",
        "timestamp": "2025-11-06T12:30:00.000Z",
        "complete": False,
        "stalled": False,
    }


def test_body_keeps_the_trainers_timestamp() -> None:
    assert running(timestamp="2025-11-06T12:31:00Z").body()["timestamp"] == "2025-11-06T12:31:00Z"


def test_body_overrides_envelope_and_derived_keys_from_the_file() -> None:
    body = running(
        type="x",
        epoch="e",
        seq=99,
        resumed=True,
        node="elsewhere",
        job_id="other",
        complete=True,
        stalled=True,
        stall_reason="x",
        read_error="y",
    ).body()
    assert not {"type", "epoch", "seq", "resumed"} & set(body)
    assert body["node"] == ""
    assert "stall_reason" not in body and "read_error" not in body
    assert (body["job_id"], body["complete"], body["stalled"]) == ("j", False, False)


def test_body_drops_null_members() -> None:
    assert "eval_loss" not in running(eval_loss=None).body()


def test_read_error_keeps_the_document() -> None:
    state = with_read_error(running(loss=1.0), "empty file")
    assert state.body()["read_error"] == "empty file"
    assert state.body()["loss"] == 1.0
    assert state.summary()["read_error"] == "empty file"


def test_pending_state() -> None:
    state = pending_state("j", modified_at=T0)
    assert state.body() == {
        "status": "pending",
        "job_id": "j",
        "node": "",
        "timestamp": "2025-11-06T12:30:00.000Z",
        "complete": False,
        "stalled": False,
    }


def test_stall_rule() -> None:
    state = running()
    assert stall_reason(state, now=T0 + 59.9, stall_after=60) is None
    assert stall_reason(state, now=T0 + 60, stall_after=60) == "no update for 60 s"
    assert stall_reason(state, now=T0 + 1, stall_after=0.5) == "no update for 0.5 s"
    assert stall_reason(state, now=T0, stall_after=60, process_alive=False) == "process exited"
    assert stall_reason(state, now=T0, stall_after=60, process_alive=True) is None
    done = with_document("j", {"status": "completed"}, modified_at=T0, now=T0, stall_after=60)
    assert stall_reason(done, now=T0 + 1000, stall_after=60, process_alive=False) is None
    assert stall_reason(pending_state("j", modified_at=T0), now=T0 + 1000, stall_after=60) is None


def test_with_stall_returns_the_same_object_when_nothing_changes() -> None:
    state = running()
    assert with_stall(state, now=T0, stall_after=60) is state
    stalled = with_stall(state, now=T0 + 61, stall_after=60)
    assert stalled.stalled
    assert (stalled.body()["stalled"], stalled.body()["stall_reason"]) == (
        True,
        "no update for 60 s",
    )
    assert with_stall(stalled, now=T0 + 62, stall_after=60) is stalled


def test_trainer_process() -> None:
    assert running(pid=12, hostname="h").trainer_process == (12, "h")
    assert running(pid="12", hostname="h").trainer_process is None
    assert running(pid=True, hostname="h").trainer_process is None
    assert running(pid=12).trainer_process is None


def test_an_old_file_is_stalled_as_soon_as_it_is_read() -> None:
    state = with_document("j", {"status": "running"}, modified_at=T0, now=T0 + 3600, stall_after=60)
    assert state.stalled


def test_summary() -> None:
    assert running(progress=12.5).summary() == {
        "job_id": "j",
        "node": "",
        "status": "running",
        "progress": 12.5,
        "complete": False,
        "stalled": False,
        "updated_at": "2025-11-06T12:30:00.000Z",
    }


def test_isoformat_utc() -> None:
    assert isoformat_utc(0.25) == "1970-01-01T00:00:00.250Z"
