"""The input boundary (issue 20): whatever bytes or values come from outside, the decoders
return a value or their own refusal, and everything built from what they return encodes as
strict UTF-8 JSON."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sidecar.core.codec import (
    MAX_DEPTH,
    REPLACEMENT,
    TooDeep,
    decode_document,
    decode_entry,
    encode,
    encode_with_list,
    sanitize,
)
from sidecar.core.contract import LATEST_TIME, clamp_time, isoformat_utc
from sidecar.core.events import JobSeen
from sidecar.core.hub import JobHub


def strict(data: bytes) -> Any:
    """``data`` parsed as strict JSON, in strict UTF-8: no NaN, no lone surrogate."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in a frame")

    value = json.loads(data.decode("utf-8"), parse_constant=refuse)
    assert not _has_surrogate(value)
    return value


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


# Text with lone surrogates as likely as any other character.
hostile_text = st.lists(
    st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)), max_size=12
).map("".join)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**400), 10**400),
    st.floats(),  # NaN and infinities among them
    hostile_text,
)
json_ish = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(hostile_text, children, max_size=4)
    ),
    max_leaves=30,
)


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@given(st.binary(max_size=300))
@example(b'{"error": "cannot open /data/\\ud800.bin"}')
@example(b'{"\\udfff": "\\ud800\\udc00\\ud800"}')
@example(nested(700))
@example(b"[" * 5000)
@example(b"1" * 5000)
@example(b'{"a": 1e999999, "b": -1e400, "c": NaN}')
def test_decode_document_returns_a_value_that_encodes_or_refuses(data: bytes) -> None:
    """Arbitrary bytes: a ``ValueError`` (the decoder's refusal), or a value that encodes as
    strict UTF-8 JSON."""
    try:
        value = decode_document(data)
    except ValueError:
        return
    strict(encode(value))


@given(json_ish)
def test_decode_document_of_any_json_text_encodes_strictly(value: Any) -> None:
    """JSON text from any value (lone surrogates escaped as ``\\udXXX``, as Python's json and
    the trainer write them) decodes to a value that encodes as strict UTF-8 JSON."""
    data = json.dumps(value, ensure_ascii=True).encode()
    strict(encode(decode_document(data)))


def test_a_lone_surrogate_becomes_the_replacement_character() -> None:
    """In values and in keys; a well-formed pair stays the character it names."""
    decoded = decode_document(b'{"error": "/data/\\ud800.bin", "\\udc00": "\\ud83d\\ude00"}')
    assert decoded == {"error": f"/data/{REPLACEMENT}.bin", REPLACEMENT: "\U0001f600"}


def test_depth_is_limited_after_parsing_too() -> None:
    assert decode_document(nested(MAX_DEPTH))
    for depth in (MAX_DEPTH + 1, 700, 999):
        with pytest.raises(TooDeep, match=r"^nesting too deep \(over 64 levels\)$"):
            decode_document(nested(depth))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("9223372036854775807", 9223372036854775807),
        ("-9223372036854775808", -9223372036854775808),
        ("9223372036854775808", 9.223372036854776e18),
        ("123456789012345678901234567890", 1.2345678901234568e29),
        ("1" * 400, None),
        ("1" * 5000, None),
        ("-" + "1" * 5000, None),
        ("1e999", None),
    ],
)
def test_numbers_a_float_cannot_hold_become_null(text: str, value: Any) -> None:
    assert decode_document(f'{{"n": {text}}}'.encode()) == {"n": value}


@given(json_ish)
def test_encode_never_raises_on_a_surrogate(value: Any) -> None:
    """A value with lone surrogates (one that came some other way than the boundary) still
    encodes, as strict UTF-8 JSON (a frame is never lost to a surrogate)."""
    finite = sanitize(value)  # NaN is refused by design: the boundary nulls it
    strict(encode(finite))
    strict(encode({"text": "\ud800x", "\udfff": [finite], "ok": "é"}))


@given(json_ish)
def test_sanitize_keeps_what_needs_no_change(value: Any) -> None:
    """Sanitizing twice changes nothing more than once."""
    once = sanitize(value)
    assert encode(sanitize(once)) == encode(once)


@given(st.lists(st.binary(max_size=60), max_size=8))
@example([b'{"step": 1}], "type": "snapshot", "status": "INJECTED", "x": [{"a": 1}', b'{"a": 2}'])
def test_history_entries_are_encoded_again_before_they_are_joined(items: list[bytes]) -> None:
    """Entries from outside go through ``decode_entry``; a log frame joined from them is one
    strict JSON object whose ``entries`` are exactly the objects that were accepted."""
    accepted = []
    for item in items:
        try:
            accepted.append(decode_entry(item))
        except ValueError:
            continue
    frame = strict(encode_with_list({"type": "log"}, "entries", accepted))
    assert frame["type"] == "log"
    assert frame["entries"] == [json.loads(entry) for entry in accepted]
    assert all(isinstance(entry, dict) for entry in frame["entries"])


def test_an_entry_crafted_to_splice_a_message_is_refused() -> None:
    """The bytes of an entry that would close the list and open other members if joined as
    they came."""
    with pytest.raises(ValueError, match=r"^invalid json: Extra data"):
        decode_entry(b'{"step": 1}], "type": "snapshot", "status": "INJECTED", "x": [{"a": 1}')


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**30), 10**30))
@example(1e12)
@example(-1e20)
def test_every_time_has_a_timestamp(moment: float) -> None:
    stamp = isoformat_utc(moment)
    assert stamp.endswith("Z") and 1970 <= int(stamp[:4]) <= 9999
    assert 0 <= clamp_time(float(moment)) <= LATEST_TIME or math.isnan(moment)


@given(st.dictionaries(hostile_text, json_ish, max_size=6), st.floats() | st.integers())
def test_the_hub_serves_any_decoded_document(document: dict[str, Any], mtime: float) -> None:
    """A document that passed the boundary, at any file time, becomes frames, a summary and a
    jobs list that are all strict UTF-8 JSON."""
    decoded = decode_document(json.dumps(document, ensure_ascii=True).encode())
    hub = JobHub(node="n", clock=lambda: 1e9)
    hub.apply(JobSeen("n", "job", {"status": "running"}, 1.0))
    hub.apply(JobSeen("n", "job", decoded, clamp_time(float(mtime))))
    version = hub.version("job")
    assert version is not None
    strict(version.snapshot_frame())
    state = hub.get("job")
    assert state is not None
    strict(encode(state.summary()))
