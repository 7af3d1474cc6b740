"""The bus's one strict decoder (issue 22): every entry kind round-trips, and anything else, one
field at a time or as any bytes, is a ``BadMessage``, never another exception."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sidecar.bus import decoder, keys, wire
from sidecar.core.codec import encode, encode_with_list
from sidecar.core.contract import MAX_HISTORY_LINE
from sidecar.core.events import JobGone, JobPublished
from sidecar.core.hub import JobHub
from sidecar.core.state import JobState

LIMITS = decoder.Limits(max_document_bytes=1 << 20)


def decode(data: bytes, node: str = "n") -> wire.Message:
    return decoder.decode(data, node, LIMITS)


def _state(**fields: object) -> bytes:
    good = json.loads(wire.state_message(JobState("j", {}, 1.0, has_file=True), "e", 1))
    return json.dumps({**good, **fields}).encode()


def test_a_state_goes_through_as_it_was_under_the_node_of_its_key() -> None:
    state = JobState(
        "job1",
        {"status": "running", "loss": 0.5, "nested": {"a": [1, 2]}},
        1_700_000_000.25,
        has_file=True,
        stall_reason="no update for 60 s",
        read_error="empty file",
        node="gpu-1",
    )
    data = wire.state_message(state, "e1", 42)
    assert b"gpu-1" not in data  # a message never names its node
    message = decode(data, "gpu-1")
    assert message == JobPublished("gpu-1", "job1", state, "e1", 42, ordered=True)
    # What another node writes about "gpu-1" in its own keys is that node's.
    assert decode(data, "gpu-2").origin == "gpu-2"  # type: ignore[union-attr]
    from_hash = decoder.decode_state(b"job1", data, "gpu-1", LIMITS)
    assert from_hash.state == state and not from_hash.ordered
    with pytest.raises(wire.BadMessage):
        decoder.decode_state(b"other-job", data, "gpu-1", LIMITS)


def test_gone_heartbeat_leave_and_history() -> None:
    assert decode(wire.gone_message("j")) == JobGone("n", "j")
    assert decode(wire.heartbeat_message("e")) == wire.Heartbeat("n", "e")
    assert decode(wire.leave_message()) == wire.Leave("n")
    mark = wire.HistoryMark("e1", 2, 10)
    data = wire.history_message("j", [b'{"loss":1.5}', b'{"step":2}'], mark=mark, reset=True)
    history = decode(data)
    assert history == wire.History("n", "j", (b'{"loss":1.5}', b'{"step":2}'), mark, True)
    assert decoder.decode_mark(mark.encode()) == mark


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"kind": "state"}',
        b'{"kind": "weird", "job_id": "j"}',
        b'{"kind": "gone", "job_id": "../etc"}',
        b'{"kind": "state", "job_id": "j", "epoch": "e", "seq": "x"}',
        _state(document=["x"]),
        _state(document="x"),
        _state(document={"status": "\ud800"}),  # json.dumps writes a lone surrogate's escape
        _state(document={"loss": float("nan")}),
        _state(document={"deep": json.loads("[" * 700 + "]" * 700)}),
        _state(document={"big": 2**64}),
        _state(document={"x": "a" * (2 << 20)}),  # 2 MiB: past --max-file-bytes
        _state(modified_at="yesterday"),
        _state(modified_at=-1e20),
        _state(modified_at=1e300),
        _state(stall_reason=5),
        _state(stall_reason="x" * 1001),
        _state(read_error={"a": 1}),
        _state(epoch="bad epoch"),
        _state(seq=-1),
        _state(seq=True),
        _state(seq=2**63),
        _state(has_file="yes"),
        b'{"kind": "history", "job_id": "j", "epoch": "e", "generation": 0,'
        b' "total": 1, "reset": false, "entries": [1]}',
        b'{"kind": "heartbeat", "epoch": null}',
        b"\xef\xbb\xbf" + wire.heartbeat_message("e"),  # a byte-order mark
        b'{"kind": "heartbeat", "epoch": "e", "x": "' + b"a" * (2 << 20) + b'"}',
    ],
)
def test_anything_else_is_a_bad_message(data: bytes) -> None:
    with pytest.raises(wire.BadMessage):
        decode(data)


def test_history_entries_past_their_limits_are_refused() -> None:
    mark = wire.HistoryMark("e1", 0, 501)
    too_many = [b"{}"] * 501
    with pytest.raises(wire.BadMessage):
        decode(wire.history_message("j", too_many, mark=mark, reset=False))
    long_line = encode({"x": "a" * MAX_HISTORY_LINE})
    with pytest.raises(wire.BadMessage):
        decode(wire.history_message("j", [long_line], mark=mark, reset=False))
    entries, dropped = decoder.history_entries([b'{"a":1}', long_line, b'{"b":"\\ud800"}'])
    assert entries == (b'{"a":1}',) and dropped == 2


def test_a_history_mark_that_is_not_one() -> None:
    for data in (b"1 2", b"e1 -1 3", b"e1 2 " + b"9" * 30, b"\xff", b"e1 2 3 " * 300):
        with pytest.raises(wire.BadMessage):
            decoder.decode_mark(data)
    assert decoder.decode_mark(b"e1 2 3") == wire.HistoryMark("e1", 2, 3)


def test_entry_ids_sort_as_the_stream_does() -> None:
    assert wire.parse_entry_id(b"1700000000000-10") > wire.parse_entry_id("1700000000000-9")
    assert wire.parse_entry_id("0-0") == (0, 0)


# Every kind of entry, with any field replaced by anything (Redis is a boundary).
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
        wire.state_message(JobState("j", {"status": "running"}, 1.0, has_file=True), "e", 1)
    ),
    "history": json.loads(
        wire.history_message("j", [b'{"a":1}'], mark=wire.HistoryMark("e", 0, 1), reset=False)
    ),
    "heartbeat": json.loads(wire.heartbeat_message("e")),
    "gone": json.loads(wire.gone_message("j")),
    "leave": json.loads(wire.leave_message()),
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
        message = decode(json.dumps(entry).encode())
    except wire.BadMessage:
        return
    _served(message)


@given(st.binary(max_size=200))
@example(b'{"kind": "state", "job_id": "j", "modified_at": 1e999}')
def test_any_bytes_are_decoded_or_refused(data: bytes) -> None:
    for check in (decode, lambda d: decoder.decode_state(b"j", d, "n", LIMITS)):
        try:
            message = check(data)
        except wire.BadMessage:
            continue
        _served(message)
    with contextlib.suppress(wire.BadMessage):
        decoder.decode_mark(data)


@given(st.lists(st.binary(max_size=40) | _ANY.map(lambda v: json.dumps(v).encode()), max_size=6))
def test_history_lists_keep_only_objects_encoded_again(items: list[bytes]) -> None:
    entries, dropped = decoder.history_entries(items)
    assert len(entries) + dropped == len(items)
    frame = encode_with_list({"type": "log"}, "entries", list(entries))
    _strict(frame)
    assert all(isinstance(entry, dict) for entry in json.loads(frame)["entries"])


@given(st.text(max_size=80) | st.binary(max_size=80))
@example("{progress-sidecar}:node:a:b:alive")
@example(b"{progress-sidecar}:node:\xff:alive")
def test_a_key_names_a_node_only_if_it_is_one(key: str | bytes) -> None:
    node = keys.node_of(key, keys.ALIVE)
    assert node is None or keys.alive_key(node) == (key.decode() if isinstance(key, bytes) else key)
    assert keys.node_of(keys.alive_key("gpu-1"), keys.ALIVE) == "gpu-1"
    assert keys.node_of(keys.changes_key("gpu-1"), keys.ALIVE) is None
