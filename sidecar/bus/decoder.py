"""Every entry read from Redis, checked once: pure, no I/O.

One strict decoder for every kind of bus entry (a stream message, a job's state in a node's
jobs hash, a history list item, a history mark, an announcement): what this project's own
publisher never writes is refused (``BadMessage``), not repaired. Sizes are bounded (a state at
most ``--max-file-bytes`` and an envelope, a history line ``MAX_HISTORY_LINE``), ids and epochs
keep their syntax, numbers are finite, counts within 2**63, times within the ones a timestamp
can show, text encodable as UTF-8. The node is never read from an entry: the caller gives it,
from the key the entry lay under.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from sidecar.bus.wire import (
    GONE,
    HEARTBEAT,
    HISTORY,
    LEAVE,
    MAX_TEXT,
    STATE,
    BadMessage,
    Heartbeat,
    History,
    HistoryMark,
    Leave,
    Message,
    cut,
    short,
)
from sidecar.core.codec import JSONObject, decode_entry, decode_strict, encode
from sidecar.core.contract import EARLIEST_TIME, LATEST_TIME, MAX_HISTORY_LINE, is_valid_job_id
from sidecar.core.events import JobGone, JobPublished
from sidecar.core.protocol import is_epoch
from sidecar.core.state import JobState

ENVELOPE: Final = 16 << 10
"""What a state message may hold besides its document: its ids, times and two reasons."""
HISTORY_CHUNK: Final = 500
"""History entries per stream message, at most."""
HISTORY_CHUNK_BYTES: Final = 256 << 10
"""Bytes of history entries per stream message: a publisher closes a message past this."""
MAX_HISTORY_MESSAGE: Final = HISTORY_CHUNK_BYTES + MAX_HISTORY_LINE + ENVELOPE
MAX_SMALL: Final = 1024
"""A heartbeat, a job gone, a node leaving, a history mark, an announcement."""


@dataclass(frozen=True, slots=True)
class Limits:
    """How large an entry may be; ``max_document_bytes`` is the reader's ``--max-file-bytes``
    (a node publishes no larger document than it reads)."""

    max_document_bytes: int

    @property
    def max_message(self) -> int:
        return max(self.max_document_bytes + ENVELOPE, MAX_HISTORY_MESSAGE)


def decode(data: bytes, node: str, limits: Limits, *, ordered: bool = True) -> Message:
    """One message of ``node``'s stream (``ordered``: read in the stream's order).

    Raises:
        BadMessage: it is not one (the reason says why).
    """
    if len(data) > limits.max_message:
        raise BadMessage(f"{len(data)} bytes (at most {limits.max_message})")
    message = _object(data)
    kind = message.get("kind")
    if kind == HEARTBEAT:
        return Heartbeat(node, epoch(message.get("epoch")))
    if kind == LEAVE:
        return Leave(node)
    if kind == STATE:
        if len(data) > limits.max_document_bytes + ENVELOPE:
            raise BadMessage(f"a state of {len(data)} bytes (at most --max-file-bytes + 16 KiB)")
        return _state(message, node, ordered=ordered)
    if kind == GONE:
        return JobGone(node, _job_id(message.get("job_id")))
    if kind == HISTORY:
        return _history(message, node)
    raise BadMessage(f"unknown kind {short(kind)}")


def decode_state(job_id: bytes, data: bytes, node: str, limits: Limits) -> JobPublished:
    """A job's state as a node's jobs hash holds it (field ``job_id``, value ``data``): the
    same message as in the stream, whose job id must be the field's.

    Raises:
        BadMessage: it is not one.
    """
    message = decode(data, node, limits, ordered=False)
    if not isinstance(message, JobPublished):
        raise BadMessage(f"not a state: {type(message).__name__}")
    if job_id.decode(errors="replace") != message.job_id:
        raise BadMessage(f"the state of {message.job_id} under job {short(job_id)}")
    return message


def decode_mark(data: bytes) -> HistoryMark:
    """A history mark (``"EPOCH GENERATION TOTAL"``).

    Raises:
        BadMessage: it is not one.
    """
    if len(data) > MAX_SMALL:
        raise BadMessage(f"a history mark of {len(data)} bytes")
    try:
        first, generation, total = data.decode().split()
        return HistoryMark(epoch(first), count(int(generation)), count(int(total)))
    except (ValueError, UnicodeDecodeError) as e:
        raise BadMessage(f"not a history mark: {short(str(e))}") from None


def history_entries(items: list[bytes]) -> tuple[tuple[bytes, ...], int]:
    """A history list as Redis holds it, each entry checked (strict JSON objects of at most
    ``MAX_HISTORY_LINE`` bytes) and encoded again; returns the good ones and how many were
    dropped."""
    entries = []
    for item in items:
        if len(item) > MAX_HISTORY_LINE:
            continue
        try:
            entries.append(decode_entry(item, strict=True))
        except ValueError:
            continue
    return tuple(entries), len(items) - len(entries)


def epoch(value: object) -> str:
    if not isinstance(value, str) or not is_epoch(value):
        raise BadMessage(f"invalid epoch {short(value)}")
    return value


def count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 63:
        raise BadMessage(f"not a count: {short(value)}")
    return value


def _object(data: bytes) -> JSONObject:
    try:
        message = decode_strict(data)
    except ValueError as e:
        raise BadMessage(cut(str(e))) from None
    if not isinstance(message, dict):
        raise BadMessage("not an object")
    return message


def _job_id(value: object) -> str:
    if not isinstance(value, str) or not is_valid_job_id(value):
        raise BadMessage(f"invalid job id {short(value)}")
    return value


def _flag(message: JSONObject, name: str) -> bool:
    value = message.get(name, False)
    if not isinstance(value, bool):
        raise BadMessage(f"{name} not true or false: {short(value)}")
    return value


def _state(message: JSONObject, node: str, *, ordered: bool) -> JobPublished:
    job_id = _job_id(message.get("job_id"))
    document, modified_at = message.get("document"), message.get("modified_at")
    if not isinstance(document, dict):
        raise BadMessage("document not an object")
    if not isinstance(modified_at, int | float) or isinstance(modified_at, bool):
        raise BadMessage(f"modified_at not a number: {short(modified_at)}")
    if not (math.isfinite(modified_at) and EARLIEST_TIME <= modified_at <= LATEST_TIME):
        raise BadMessage(f"modified_at not a time: {short(modified_at)}")
    state = JobState(
        job_id,
        document,
        float(modified_at),
        has_file=_flag(message, "has_file"),
        stall_reason=_text_or_none(message.get("stall_reason")),
        read_error=_text_or_none(message.get("read_error")),
        node=node,
    )
    version = epoch(message.get("epoch")), count(message.get("seq"))
    return JobPublished(node, job_id, state, *version, ordered=ordered)


def _history(message: JSONObject, node: str) -> History:
    job_id = _job_id(message.get("job_id"))
    entries = message.get("entries")
    if not isinstance(entries, list) or len(entries) > HISTORY_CHUNK:
        raise BadMessage(f"entries not a list of at most {HISTORY_CHUNK}")
    encoded = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise BadMessage(f"a history entry not an object: {short(entry)}")
        item = encode(entry)  # strict already: the whole message was
        if len(item) > MAX_HISTORY_LINE:
            raise BadMessage(f"a history entry of {len(item)} bytes")
        encoded.append(item)
    mark = HistoryMark(
        epoch(message.get("epoch")), count(message.get("generation")), count(message.get("total"))
    )
    return History(node, job_id, tuple(encoded), mark, _flag(message, "reset"))


def _text_or_none(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise BadMessage(f"a reason that is not text of at most {MAX_TEXT}: {short(value)}")
    return value
