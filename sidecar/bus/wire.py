"""What travels through Redis, and where it lies: pure, no I/O.

Every change of a node's jobs is one entry of one stream (``CHANGES``), a JSON object in the
field ``m``; the latest state of each job also lies in a key of its own (``job_key``), and its
history in a list (``history_key``) with a small key beside it saying how far it goes
(``history_mark_key``), so that a sidecar that starts late, or missed part of the stream, reads
the current state of everything, then follows the stream. All keys share one hash tag, so that
they would all live on one shard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sidecar.core.argtypes import is_node_name
from sidecar.core.codec import (
    JSONObject,
    decode_document,
    decode_entry,
    encode,
    encode_with_list,
)
from sidecar.core.contract import clamp_time, is_valid_job_id
from sidecar.core.events import HistoryLines, JobGone, JobPublished
from sidecar.core.protocol import is_epoch
from sidecar.core.state import JobState

PREFIX = "{progress-sidecar}:"
CHANGES = PREFIX + "changes"
"""The stream of every change of every node."""
JOB_PATTERN = PREFIX + "job:*"
NODE_PATTERN = PREFIX + "node:*"
FIELD = b"m"

STATE = "state"
GONE = "gone"
HISTORY = "history"
HEARTBEAT = "heartbeat"
LEAVE = "leave"


def job_key(node: str, job_id: str) -> str:
    return f"{PREFIX}job:{node}/{job_id}"


def history_key(node: str, job_id: str) -> str:
    return f"{PREFIX}history:{node}/{job_id}"


def history_mark_key(node: str, job_id: str) -> str:
    return f"{PREFIX}history-mark:{node}/{job_id}"


def node_key(node: str) -> str:
    return f"{PREFIX}node:{node}"


def node_of_key(key: bytes | str) -> str | None:
    """The node an announcement's key names; None when it names none (any program may write
    keys that match the pattern)."""
    text = key.decode(errors="replace") if isinstance(key, bytes) else key
    node = text.removeprefix(PREFIX + "node:")
    return node if is_node_name(node) else None


MAX_TEXT: Final = 1000
"""The longest reason (``stall_reason``, ``read_error``) an entry may carry, in characters."""


def history_entries(items: list[bytes]) -> tuple[tuple[bytes, ...], int]:
    """A history list as Redis holds it, each entry checked and encoded again
    (``decode_entry``); returns the good entries and how many were dropped."""
    entries = []
    for item in items:
        try:
            entries.append(decode_entry(item))
        except ValueError:
            continue
    return tuple(entries), len(items) - len(entries)


def state_message(state: JobState, epoch: str, seq: int) -> bytes:
    """A job's state as its owner publishes it: everything a replica needs to serve the same
    body under the same version name."""
    message: JSONObject = {
        "kind": STATE,
        "node": state.node,
        "job_id": state.job_id,
        "epoch": epoch,
        "seq": seq,
        "document": state.document,
        "modified_at": state.modified_at,
        "has_file": state.has_file,
    }
    if state.stall_reason is not None:
        message["stall_reason"] = state.stall_reason
    if state.read_error is not None:
        message["read_error"] = state.read_error
    return encode(message)


def gone_message(node: str, job_id: str) -> bytes:
    return encode({"kind": GONE, "node": node, "job_id": job_id})


def heartbeat_message(node: str, epoch: str) -> bytes:
    return encode({"kind": HEARTBEAT, "node": node, "epoch": epoch})


def leave_message(node: str) -> bytes:
    return encode({"kind": LEAVE, "node": node})


@dataclass(frozen=True, slots=True)
class HistoryMark:
    """How far a job's published history goes: its owner's ``epoch`` (the process), its
    ``generation`` (resets counted by that process) and ``total`` (entries since the last
    reset, dropped ones included)."""

    epoch: str
    generation: int
    total: int

    def encode(self) -> bytes:
        return f"{self.epoch} {self.generation} {self.total}".encode()

    @classmethod
    def decode(cls, data: bytes) -> HistoryMark:
        """Raises:
        BadMessage: it is not one."""
        try:
            epoch, generation, total = data.decode().split()
            return cls(_epoch(epoch), _count(int(generation)), _count(int(total)))
        except (ValueError, UnicodeDecodeError) as e:
            raise BadMessage(f"not a history mark: {e}") from None

    def same_history(self, other: HistoryMark) -> bool:
        """Whether both marks count in the same numbering (the same process, no reset between)."""
        return (self.epoch, self.generation) == (other.epoch, other.generation)


def history_message(
    node: str, job_id: str, entries: list[bytes], *, mark: HistoryMark, reset: bool
) -> bytes:
    """History entries (each already encoded JSON) of a job; ``mark`` is where they end."""
    head: JSONObject = {
        "kind": HISTORY,
        "node": node,
        "job_id": job_id,
        "epoch": mark.epoch,
        "generation": mark.generation,
        "total": mark.total,
        "reset": reset,
    }
    return encode_with_list(head, "entries", entries)


@dataclass(frozen=True, slots=True)
class History:
    """History entries as a replica reads them from the stream."""

    origin: str
    job_id: str
    entries: tuple[bytes, ...]
    mark: HistoryMark
    reset: bool

    def lines(self, entries: tuple[bytes, ...], *, reset: bool) -> HistoryLines:
        return HistoryLines(self.origin, self.job_id, entries, reset=reset)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A node says it is alive."""

    origin: str
    epoch: str


@dataclass(frozen=True, slots=True)
class Leave:
    """A node's sidecar stops (SIGTERM, Ctrl-C): it will not be heard from again."""

    origin: str


Message = JobPublished | JobGone | History | Heartbeat | Leave


class BadMessage(ValueError):
    """Not a message of this protocol (another program's key, a newer version's, a bug's)."""


def decode(data: bytes) -> Message:
    """One stream entry's message, every field checked (a message the hub cannot take must
    never reach it).

    Raises:
        BadMessage: it is not one.
    """
    try:
        message = decode_document(data)
        if not isinstance(message, dict):
            raise BadMessage("not an object")
        return _message(message)
    except (ValueError, KeyError, TypeError) as e:
        if isinstance(e, BadMessage):
            raise
        raise BadMessage(f"{type(e).__name__}: {_short(str(e))}") from None


def _message(message: JSONObject) -> Message:
    kind, node = message["kind"], message["node"]
    if not isinstance(node, str) or not is_node_name(node):
        raise BadMessage(f"invalid node {_short(node)}")
    if kind == HEARTBEAT:
        return Heartbeat(node, _epoch(message["epoch"]))
    if kind == LEAVE:
        return Leave(node)
    job_id = message["job_id"]
    if not isinstance(job_id, str) or not is_valid_job_id(job_id):
        raise BadMessage(f"invalid job id {_short(job_id)}")
    if kind == GONE:
        return JobGone(node, job_id)
    if kind == STATE:
        document, modified_at = message["document"], message["modified_at"]
        if not isinstance(document, dict):
            raise BadMessage("document not an object")
        if not isinstance(modified_at, int | float) or isinstance(modified_at, bool):
            raise BadMessage("modified_at not a number")
        state = JobState(
            job_id,
            document,
            clamp_time(float(modified_at)),
            has_file=message["has_file"] is True,
            stall_reason=_text_or_none(message.get("stall_reason")),
            read_error=_text_or_none(message.get("read_error")),
            node=node,
        )
        epoch, seq = _epoch(message["epoch"]), _count(message["seq"])
        return JobPublished(node, job_id, state, epoch, seq)
    if kind == HISTORY:
        entries = message["entries"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise BadMessage("entries not a list of objects")
        mark = HistoryMark(
            _epoch(message["epoch"]), _count(message["generation"]), _count(message["total"])
        )
        encoded = tuple(encode(entry) for entry in entries)
        return History(node, job_id, encoded, mark, message["reset"] is True)
    raise BadMessage(f"unknown kind {_short(kind)}")


def _epoch(value: object) -> str:
    if not isinstance(value, str) or not is_epoch(value):
        raise BadMessage(f"invalid epoch {_short(value)}")
    return value


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadMessage(f"not a count: {_short(value)}")
    return value


def _text_or_none(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise BadMessage(f"not a string: {_short(value)}")
    if value is not None and len(value) > MAX_TEXT:
        raise BadMessage(f"a reason of {len(value)} characters (at most {MAX_TEXT})")
    return value


def _short(value: object) -> str:
    """``repr(value)`` cut to a log line's worth."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_entry_id(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id (``"1700000000000-3"``) as a pair that sorts as the stream does."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)
