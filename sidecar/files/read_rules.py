"""What one read of a job's progress file means: pure rules, no I/O.

A good read publishes the document. No file is a pending job while its directory stands, and no
job once that goes. A bad read (empty, half-written, cut off) is read again a few ms later, as a
writer that truncates and then writes is caught between the two; past those re-reads the last
good state stays, marked with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sidecar.core.codec import JSONObject
from sidecar.core.state import PENDING_DOCUMENT
from sidecar.files.reader import Document, Missing, ReadResult

TORN_READ_RETRIES: Final = (0.002, 0.005, 0.010, 0.020)
"""Pauses, in seconds, before each re-read of a file that did not parse."""
PENDING: Final[JSONObject] = PENDING_DOCUMENT
"""The document of a job without a file: one dict, shared by every such job (100,000 pending
jobs held 100,000 copies), and so never changed."""
FILE_MISSING: Final = "progress file missing"


@dataclass(frozen=True, slots=True)
class Known:
    """What the source last published of a job."""

    document: JSONObject
    modified_at: float
    has_file: bool


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish this as the job's state."""

    document: JSONObject
    modified_at: float
    has_file: bool
    read_error: str | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """Read again after ``delay`` seconds; publish ``pending`` first when it is set (a job
    whose file exists is a job, even before the file parses)."""

    delay: float
    pending: Publish | None = None


@dataclass(frozen=True, slots=True)
class Remove:
    """The job is gone."""


@dataclass(frozen=True, slots=True)
class Keep:
    """Nothing to publish."""


Decision = Publish | Retry | Remove | Keep


def decide(
    result: ReadResult,
    *,
    known: Known | None,
    attempt: int,
    dir_mtime: float | None,
    now: float,
) -> Decision:
    """What to do after reading a job's file.

    Args:
        result: the read.
        known: what was last published of the job; None if nothing was.
        attempt: how many re-reads of a bad file came before this one.
        dir_mtime: the mtime of the job's directory; None if there is none (it is gone, or the
            pattern has no job directory). Not looked at after a good read.
        now: POSIX time, for a job first seen with a file that does not parse yet.
    """
    if isinstance(result, Document):
        return Publish(result.data, result.modified_at, has_file=True)
    if isinstance(result, Missing) and (known is None or not known.has_file):
        return _without_file(known, dir_mtime)
    if attempt < len(TORN_READ_RETRIES):
        # Unreadable, or gone from a job that had one: a writer may be half-way through.
        pending = Publish(PENDING, now, has_file=False) if known is None else None
        return Retry(TORN_READ_RETRIES[attempt], pending)
    if isinstance(result, Missing):
        if dir_mtime is None:
            return _without_file(known, dir_mtime)
        reason = FILE_MISSING  # the directory stays: the job keeps its last good state
    else:
        reason = result.reason
    if known is None:
        return Publish(PENDING, now, has_file=False, read_error=reason)
    return Publish(known.document, known.modified_at, known.has_file, read_error=reason)


def _without_file(known: Known | None, dir_mtime: float | None) -> Decision:
    if dir_mtime is None:
        return Keep() if known is None else Remove()
    if known is None or known.has_file:
        return Publish(PENDING, dir_mtime, has_file=False)
    return Keep()
