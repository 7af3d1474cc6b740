"""What travels through Redis: the messages a node writes, pure, no I/O.

Every change of a node's jobs is one entry of the node's stream (``keys.changes_key``), a JSON
object in the field ``m``: a job's state, a job gone, history lines, a heartbeat, the node
leaving. A message never names its node: the key it lies under does. What a reader makes of
each, every field checked: ``sidecar.bus.decoder``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sidecar.core.codec import JSONObject, encode, encode_with_list
from sidecar.core.events import HistoryLines, JobGone, JobPublished
from sidecar.core.state import JobState

STATE = "state"
GONE = "gone"
HISTORY = "history"
HEARTBEAT = "heartbeat"
LEAVE = "leave"


MAX_TEXT: Final = 1000
"""The longest reason (``stall_reason``, ``read_error``) an entry may carry, in characters."""


def state_message(state: JobState, epoch: str, seq: int) -> bytes:
    """A job's state as its owner publishes it: everything a replica needs to serve the same
    body under the same version name."""
    message: JSONObject = {
        "kind": STATE,
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


def gone_message(job_id: str) -> bytes:
    return encode({"kind": GONE, "job_id": job_id})


def heartbeat_message(epoch: str) -> bytes:
    return encode({"kind": HEARTBEAT, "epoch": epoch})


def leave_message() -> bytes:
    return encode({"kind": LEAVE})


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

    def same_history(self, other: HistoryMark) -> bool:
        """Whether both marks count in the same numbering (the same process, no reset between)."""
        return (self.epoch, self.generation) == (other.epoch, other.generation)


def history_message(job_id: str, entries: list[bytes], *, mark: HistoryMark, reset: bool) -> bytes:
    """History entries (each already encoded JSON) of a job; ``mark`` is where they end."""
    head: JSONObject = {
        "kind": HISTORY,
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


def short(value: object) -> str:
    """``repr(value)`` cut to a log line's worth."""
    return cut(repr(value))


def cut(text: str) -> str:
    """``text`` cut to a log line's worth."""
    return text if len(text) <= 80 else text[:77] + "..."


def parse_entry_id(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id (``"1700000000000-3"``) as a pair that sorts as the stream does."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)
