from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sidecar.bus import wire
from sidecar.core.codec import encode, encode_with_list
from sidecar.core.events import JobGone, JobPublished
from sidecar.core.hub import JobHub
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


# Every kind of entry, with any field replaced by anything (issue 20: Redis is a boundary).
_ANY = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(10**30), 10**30)
    | st.floats()
    | st.lists(st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)), max_size=8).map(
        "".join
    ),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=8,
)
_GOOD = {
    "state": json.loads(
        wire.state_message(
            JobState("j", {"status": "running"}, 1.0, has_file=True, node="n"), "e", 1
        )
    ),
    "history": json.loads(
        wire.history_message("n", "j", [b'{"a":1}'], mark=wire.HistoryMark("e", 0, 1), reset=False)
    ),
    "heartbeat": json.loads(wire.heartbeat_message("n", "e")),
    "gone": json.loads(wire.gone_message("n", "j")),
    "leave": json.loads(wire.leave_message("n")),
}


def _strict(data: bytes) -> None:
    def refuse(name: str) -> None:
        raise AssertionError(name)

    json.loads(data.decode("utf-8"), parse_constant=refuse)


def _served(message: wire.Message) -> None:
    """What the hub makes of a decoded message encodes as strict UTF-8 JSON."""
    if isinstance(message, JobPublished):
        hub = JobHub(node="")
        hub.apply(message)
        version = hub.version(message.job_id)
        assert version is not None
        _strict(version.snapshot_frame())
        _strict(encode(message.state.summary()))
    elif isinstance(message, wire.History):
        _strict(encode_with_list({"type": "log"}, "entries", list(message.entries)))


@given(st.sampled_from(sorted(_GOOD)), st.data())
@example("state", None)
def test_any_field_of_any_entry_is_decoded_or_refused(
    kind: str, data: st.DataObject | None
) -> None:
    """One field at a time replaced by anything: ``BadMessage`` or a message whose state and
    history encode as strict UTF-8 JSON (json.dumps writes lone surrogates as escapes)."""
    entry = dict(_GOOD[kind])
    if data is not None:
        entry[data.draw(st.sampled_from(sorted(entry)))] = data.draw(_ANY)
    else:
        entry.update(document={"status": "\ud800", "deep": [[[["\udfff"]]]]}, modified_at=-1e20)
    try:
        message = wire.decode(json.dumps(entry).encode())
    except wire.BadMessage:
        return
    _served(message)


@given(st.binary(max_size=200))
@example(b'{"kind": "state", "node": "n", "job_id": "j", "modified_at": 1e999}')
def test_any_bytes_are_decoded_or_refused(data: bytes) -> None:
    try:
        message = wire.decode(data)
    except wire.BadMessage:
        return
    _served(message)


@given(st.lists(st.binary(max_size=40) | _ANY.map(lambda v: json.dumps(v).encode()), max_size=6))
def test_history_lists_keep_only_objects_encoded_again(items: list[bytes]) -> None:
    entries, dropped = wire.history_entries(items)
    assert len(entries) + dropped == len(items)
    frame = encode_with_list({"type": "log"}, "entries", list(entries))
    _strict(frame)
    assert all(isinstance(entry, dict) for entry in json.loads(frame)["entries"])


@pytest.mark.parametrize("key", [b"{progress-sidecar}:node:\xff", "{progress-sidecar}:node:a b"])
def test_an_announcement_key_of_no_valid_node_names_none(key: bytes | str) -> None:
    assert wire.node_of_key(key) is None
    assert wire.node_of_key(wire.node_key("gpu-1")) == "gpu-1"
