"""The wire protocol, without I/O: message types, envelopes, close codes with their reasons, and
the bytes of a server's text frame.

Both WebSocket endpoints, REST, the Python client and the terminal view take their names from
here; ``progress-client.js`` and docs/protocol.md list the same ones (tests hold them to it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Literal, TypeAlias

from sidecar.core.codec import JSONObject

MessageType: TypeAlias = Literal["snapshot", "patch", "log"]
"""The ``type`` of a message: the whole state, what changed, or history entries."""

SNAPSHOT: Final = "snapshot"
PATCH: Final = "patch"
LOG: Final = "log"
MESSAGE_TYPES: Final[tuple[MessageType, ...]] = (SNAPSHOT, PATCH, LOG)
"""What ``/ws/training/{job_id}`` sends."""
JOBS_LIST_MESSAGE_TYPES: Final[tuple[MessageType, ...]] = (SNAPSHOT, PATCH)
"""What ``/ws/jobs`` sends: a snapshot of every job's summary, then patches of that map."""

ENVELOPE_KEYS: Final = ("type", "epoch", "seq", "resumed")
"""The keys a job message adds to the job's state (``job_id`` and ``timestamp`` are state)."""

RESUMED: Final = "resumed"
"""Set (true) on the patch that answers ``?since=EPOCH:SEQ``: it turns that version into the
current one."""


def envelope(
    kind: MessageType, *, job_id: str, epoch: str, seq: int, timestamp: str, fields: JSONObject
) -> JSONObject:
    """A job's message: ``type``, ``job_id``, ``epoch``, ``seq`` and ``timestamp`` first, then
    ``fields``.

    Args:
        kind: the message type.
        job_id: the job.
        epoch: the numbering ``seq`` belongs to (the job's owner's, opaque).
        seq: the job's state version the message is at.
        timestamp: the state's timestamp (ISO 8601 UTC).
        fields: the state, the merge patch, or the log's members; a key the envelope also has
            keeps its place and takes the value in ``fields``.
    """
    message: JSONObject = {
        "type": kind,
        "job_id": job_id,
        "epoch": epoch,
        "seq": seq,
        "timestamp": timestamp,
    }
    message.update(fields)
    return message


_EPOCH = re.compile(r"[0-9A-Za-z_-]{1,64}")


def parse_since(text: str) -> tuple[str, int] | None:
    """``EPOCH:SEQ`` (a ``since`` query value) as a pair; None when it is not one."""
    epoch, colon, seq = text.rpartition(":")
    if not colon or not _EPOCH.fullmatch(epoch) or not seq.isascii() or not seq.isdigit():
        return None
    if len(seq) > 18:
        return None
    return epoch, int(seq)


def is_epoch(text: str) -> bool:
    return _EPOCH.fullmatch(text) is not None


def jobs_list_message(
    kind: MessageType, *, seq: int, timestamp: str, jobs: JSONObject
) -> JSONObject:
    """A ``/ws/jobs`` message: every summary by job id (snapshot) or a merge patch of them.

    Args:
        kind: ``snapshot`` for the first message of a connection, ``patch`` after it.
        seq: the message's number on its connection, from 1.
        timestamp: when it was sent (ISO 8601 UTC).
        jobs: summaries by job id, or the merge patch of that map.
    """
    return {"type": kind, "seq": seq, "timestamp": timestamp, "jobs": jobs}


class CloseCode(IntEnum):
    """The close codes the sidecar sends (RFC 6455 section 7.4; 4xxx mirror HTTP statuses)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    TRY_AGAIN_LATER = 1013
    INVALID_REQUEST = 4400
    UNAUTHORIZED = 4401
    NOT_FOUND = 4404


@dataclass(frozen=True, slots=True)
class Close:
    """A close code with its reason, as a browser's ``CloseEvent`` shows them."""

    code: CloseCode
    reason: str

    @property
    def message(self) -> bytes:
        """The reason as the close frame carries it."""
        return self.reason.encode()


JOB_COMPLETE: Final = Close(CloseCode.NORMAL, "job complete")
SHUTTING_DOWN: Final = Close(CloseCode.GOING_AWAY, "server shutting down")
BINARY_REFUSED: Final = Close(CloseCode.UNSUPPORTED_DATA, "binary frames not accepted")
MESSAGE_TOO_BIG: Final = Close(CloseCode.UNSUPPORTED_DATA, "message too big")
TOO_MANY_CLIENTS: Final = Close(CloseCode.TRY_AGAIN_LATER, "too many clients")
TOO_MANY_CLIENTS_FOR_JOB: Final = Close(CloseCode.TRY_AGAIN_LATER, "too many clients for this job")
TOO_MANY_CLIENTS_FROM_ADDRESS: Final = Close(
    CloseCode.TRY_AGAIN_LATER, "too many clients for this job from this address"
)
TOO_MANY_JOBS_LIST_CLIENTS_FROM_ADDRESS: Final = Close(
    CloseCode.TRY_AGAIN_LATER, "too many clients of the jobs list from this address"
)
INVALID_JOB_ID: Final = Close(CloseCode.INVALID_REQUEST, "invalid job id")
INVALID_FORMAT: Final = Close(CloseCode.INVALID_REQUEST, "invalid format: use patch or full")
INVALID_HISTORY: Final = Close(CloseCode.INVALID_REQUEST, "invalid history: use 0 or 1")
INVALID_SINCE: Final = Close(CloseCode.INVALID_REQUEST, "invalid since: use EPOCH:SEQ")
UNAUTHORIZED: Final = Close(CloseCode.UNAUTHORIZED, "unauthorized")
UNKNOWN_JOB: Final = Close(CloseCode.NOT_FOUND, "unknown job")
JOB_REMOVED: Final = Close(CloseCode.NOT_FOUND, "job removed")

CLOSES: Final = (
    JOB_COMPLETE,
    SHUTTING_DOWN,
    BINARY_REFUSED,
    MESSAGE_TOO_BIG,
    TOO_MANY_CLIENTS,
    TOO_MANY_CLIENTS_FOR_JOB,
    TOO_MANY_CLIENTS_FROM_ADDRESS,
    TOO_MANY_JOBS_LIST_CLIENTS_FROM_ADDRESS,
    INVALID_JOB_ID,
    INVALID_FORMAT,
    INVALID_HISTORY,
    INVALID_SINCE,
    UNAUTHORIZED,
    UNKNOWN_JOB,
    JOB_REMOVED,
)
"""Every close the sidecar sends, as docs/protocol.md's table lists them."""

FINAL_CLOSE_CODES: Final = frozenset({CloseCode.INVALID_REQUEST, CloseCode.UNAUTHORIZED})
"""Codes after which a client stops: asking again cannot help. 4404 is final once the job was
seen; before, the job may yet appear. The others are worth a retry (1001, 1013...)."""


def text_frame(payload: bytes) -> bytes:
    """A whole server text frame: unmasked, not compressed, unfragmented (RFC 6455 section 5.2).

    Args:
        payload: the message, UTF-8.
    """
    length = len(payload)
    if length < 126:
        header = bytes((0x81, length))
    elif length < 1 << 16:
        header = bytes((0x81, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + length.to_bytes(8, "big")
    return header + payload
