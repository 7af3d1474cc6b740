"""The wire protocol's names and bytes, and the browser client and docs that repeat them."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
from websockets.frames import Frame, Opcode

from sidecar.core import protocol, state
from sidecar.core.codec import encode
from sidecar.core.contract import JOB_ID_PATTERN
from sidecar.core.protocol import (
    CLOSES,
    ENVELOPE_KEYS,
    FINAL_CLOSE_CODES,
    JOBS_LIST_MESSAGE_TYPES,
    MESSAGE_TYPES,
    CloseCode,
    envelope,
    jobs_list_message,
    text_frame,
)

REPO = Path(__file__).resolve().parents[3]
JS_CLIENT = REPO / "sidecar" / "server" / "static" / "progress-client.js"
DOCS = REPO / "docs" / "protocol.md"


def test_envelope_puts_its_keys_first_in_wire_order() -> None:
    message = envelope(
        "patch",
        job_id="j",
        epoch="e1",
        seq=7,
        timestamp="2025-11-06T12:30:00Z",
        fields={"progress": 1.5},
    )
    assert encode(message) == (
        b'{"type":"patch","job_id":"j","epoch":"e1","seq":7,"timestamp":"2025-11-06T12:30:00Z",'
        b'"progress":1.5}'
    )


def test_envelope_fields_that_repeat_envelope_keys_keep_their_place() -> None:
    """A snapshot's fields are the whole state, ``job_id`` and ``timestamp`` included."""
    body = {"job_id": "j", "status": "running", "timestamp": "t"}
    message = envelope("snapshot", job_id="j", epoch="e", seq=1, timestamp="t", fields=body)
    assert list(message) == ["type", "job_id", "epoch", "seq", "timestamp", "status"]


def test_jobs_list_message_on_the_wire() -> None:
    message = jobs_list_message("patch", seq=2, timestamp="t", jobs={"a": {"progress": 2}})
    assert (
        encode(message) == b'{"type":"patch","seq":2,"timestamp":"t","jobs":{"a":{"progress":2}}}'
    )


def test_message_types() -> None:
    assert MESSAGE_TYPES == ("snapshot", "patch", "log")
    assert set(JOBS_LIST_MESSAGE_TYPES) < set(MESSAGE_TYPES)


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
def test_text_frame_is_what_another_implementation_writes(length: int) -> None:
    """Every length encoding of RFC 6455 section 5.2, against the websockets library's frames."""
    payload = b"x" * length
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert text_frame(payload) == expected


def test_every_close_code_has_a_reason_and_every_reason_is_unique() -> None:
    assert {close.code for close in CLOSES} == set(CloseCode)
    reasons = [close.reason for close in CLOSES]
    assert len(set(reasons)) == len(reasons)
    assert set(CLOSES) == {
        value for value in vars(protocol).values() if isinstance(value, protocol.Close)
    }, "a close defined in the module but missing from CLOSES"


def test_close_codes_and_reasons_fit_a_close_frame() -> None:
    """Registered codes below 4000, private ones in 4000-4999; a reason fits in the 123 bytes
    a control frame leaves it (RFC 6455 sections 5.5 and 7.4)."""
    for close in CLOSES:
        assert 1000 <= close.code <= 1015 or 4000 <= close.code <= 4999, close
        assert 0 < len(close.message) <= 123, close
    assert set(CloseCode) >= FINAL_CLOSE_CODES


def test_state_drops_the_envelope_keys_from_documents() -> None:
    assert set(state.ENVELOPE_KEYS) == set(protocol.ENVELOPE_KEYS)


def _js_object(source: str, name: str) -> dict[str, str]:
    match = re.search(rf"const {name} = \{{(.*?)\}};", source, re.DOTALL)
    assert match, f"no `const {name} = {{...}};` in {JS_CLIENT.name}"
    return dict(re.findall(r"(\w+):\s*(\"\w+\"|\d+)", match.group(1)))


def test_js_client_lists_the_protocols_message_types_and_close_codes() -> None:
    source = JS_CLIENT.read_text()
    messages = _js_object(source, "MESSAGE")
    assert {name: value.strip('"') for name, value in messages.items()} == {
        kind.upper(): kind for kind in MESSAGE_TYPES
    }
    closes = _js_object(source, "CLOSE")
    assert {name: int(value) for name, value in closes.items()} == {
        code.name: code.value for code in CloseCode
    }
    final = re.search(r"const FINAL_CLOSES = \[(.*?)\];", source)
    assert final, "no FINAL_CLOSES in the client"
    assert set(re.findall(r"CLOSE\.(\w+)", final.group(1))) == {c.name for c in FINAL_CLOSE_CODES}


def test_js_client_strips_the_protocols_envelope_keys() -> None:
    keys = re.search(r"const ENVELOPE_KEYS = \[(.*?)\];", JS_CLIENT.read_text())
    assert keys, "no ENVELOPE_KEYS in the client"
    assert re.findall(r'"(\w+)"', keys.group(1)) == list(ENVELOPE_KEYS)


def test_js_client_uses_its_tables_not_literals() -> None:
    """A code or type written out in the code would escape the comparison above."""
    source = JS_CLIENT.read_text()
    assert not re.findall(r"\.code\s*[!=]==?\s*\d", source)
    assert not re.findall(r"\.type\s*[!=]==?\s*[\"']", source)


def _docs_section(heading: str) -> str:
    text = DOCS.read_text()
    start = text.index(heading)
    end = text.find("\n#", start + len(heading))
    return text[start : end if end != -1 else None]


def test_docs_close_code_table_lists_exactly_the_protocols_closes() -> None:
    listed: dict[int, set[str]] = {}
    for line in _docs_section("### Close codes").splitlines():
        if match := re.match(r"\| (\d{4}) \| (.*?) \|", line):
            listed[int(match.group(1))] = set(re.findall(r"`([^`]+)`", match.group(2)))
    expected: dict[int, set[str]] = defaultdict(set)
    for close in CLOSES:
        expected[close.code].add(close.reason)
    assert listed == expected


def test_docs_list_the_protocols_message_types() -> None:
    bullet = re.search(r"^- `type`: (.*)$", _docs_section("## WebSocket"), re.MULTILINE)
    assert bullet, "no `type` bullet in docs/protocol.md"
    named = {word for word in re.findall(r"`([^`]+)`", bullet.group(1)) if word.isalpha()}
    assert named == set(MESSAGE_TYPES)


def test_the_dashboard_checks_job_ids_as_the_contract_does() -> None:
    """dashboard.js refuses an invalid id before asking; its pattern is the contract's."""
    source = (REPO / "sidecar" / "server" / "static" / "dashboard.js").read_text()
    match = re.search(r"const JOB_ID = /\^(.+)\$/;", source)
    assert match is not None
    assert match.group(1) == JOB_ID_PATTERN
