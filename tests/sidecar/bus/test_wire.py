from __future__ import annotations

import json

import pytest

from sidecar.bus import wire
from sidecar.core.events import JobGone, JobPublished
from sidecar.core.state import JobState


def _state(**fields: object) -> bytes:
    good = json.loads(wire.state_message(JobState("j", {}, 1.0, has_file=True, node="n"), "e", 1))
    return json.dumps({**good, **fields}).encode()


def test_a_state_goes_through_as_it_was() -> None:
    state = JobState(
        "job1",
        {"status": "running", "loss": 0.5, "nested": {"a": [1, 2]}},
        1_700_000_000.25,
        has_file=True,
        stall_reason="no update for 60 s",
        read_error="empty file",
        node="gpu-1",
    )
    message = wire.decode(wire.state_message(state, "e1", 42))
    assert message == JobPublished("gpu-1", "job1", state, "e1", 42)
    assert isinstance(message, JobPublished) and message.state.body() == state.body()


def test_gone_heartbeat_and_history() -> None:
    assert wire.decode(wire.gone_message("n", "j")) == JobGone("n", "j")
    assert wire.decode(wire.heartbeat_message("n", "e")) == wire.Heartbeat("n", "e")
    assert wire.decode(wire.leave_message("n")) == wire.Leave("n")
    mark = wire.HistoryMark("e1", 2, 10)
    data = wire.history_message("n", "j", [b'{"loss":1.5}', b'{"step":2}'], mark=mark, reset=True)
    history = wire.decode(data)
    assert history == wire.History("n", "j", (b'{"loss":1.5}', b'{"step":2}'), mark, True)
    assert wire.HistoryMark.decode(mark.encode()) == mark


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"kind": "state"}',
        b'{"kind": "weird", "node": "n", "job_id": "j"}',
        b'{"kind": "gone", "node": "n", "job_id": "../etc"}',
        b'{"kind": "gone", "node": "", "job_id": "j"}',
        b'{"kind": "state", "node": "n", "job_id": "j", "epoch": "e", "seq": "x"}',
        # Each field the hub relies on is checked: a bad one must never reach it.
        _state(document=["x"]),
        _state(document="x"),
        _state(modified_at="yesterday"),
        _state(stall_reason=5),
        _state(read_error={"a": 1}),
        _state(epoch="bad epoch"),
        _state(seq=-1),
        _state(seq=True),
        _state(node="a b"),
        b'{"kind": "history", "node": "n", "job_id": "j", "epoch": "e", "generation": 0,'
        b' "total": 1, "reset": false, "entries": [1]}',
        b'{"kind": "heartbeat", "node": "n", "epoch": null}',
    ],
)
def test_anything_else_is_a_bad_message(data: bytes) -> None:
    with pytest.raises(wire.BadMessage):
        wire.decode(data)


def test_a_history_mark_that_is_not_one() -> None:
    with pytest.raises(wire.BadMessage):
        wire.HistoryMark.decode(b"1 2")  # an older sidecar's, without the epoch
    assert wire.HistoryMark.decode(b"e1 2 3") == wire.HistoryMark("e1", 2, 3)


def test_entry_ids_sort_as_the_stream_does() -> None:
    assert wire.parse_entry_id(b"1700000000000-10") > wire.parse_entry_id("1700000000000-9")
    assert wire.parse_entry_id("0-0") == (0, 0)
