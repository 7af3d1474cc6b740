"""The jobs list: each job's summary encoded once per state, and the query of ``GET /api/jobs``
(``?status=``, ``?limit=``, ``?after=``) checked before anything looks at it. Pure.

A listing joins bytes the encoder made, never text from outside: every summary is
``encode(drop_nulls(state.summary()))``, an object, and job ids are encoded as JSON strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from sidecar.core.codec import drop_nulls, encode
from sidecar.core.contract import is_valid_job_id
from sidecar.core.state import JobState

MAX_LIMIT: Final = 100_000
"""The largest page ``?limit=`` may ask for."""
MAX_STATUSES: Final = 16
"""How many ``?status=`` a query may give."""
MAX_STATUS_LENGTH: Final = 100
JOBS_QUERY_KEYS: Final = ("status", "limit", "after")
"""The parameters of ``GET /api/jobs``; any other is not looked at."""
INVALID_LIMIT: Final = "invalid limit"
INVALID_CURSOR: Final = "invalid cursor"
INVALID_STATUS: Final = "invalid status"

_DIGITS = re.compile(r"[0-9]{1,7}")
# GET /api/jobs has always shown these two, null when the file has none (the stream leaves
# nulls out, as every message of the protocol does).
_NULL_MEMBERS: Final = (("status", b'"status":null'), ("progress", b'"progress":null'))


def encoded_summary(state: JobState) -> bytes:
    """A job's summary as ``/ws/jobs`` sends it (null members left out), encoded."""
    return encode(drop_nulls(state.summary()))


def rest_summary(state: JobState, encoded: bytes) -> bytes:
    """The summary as ``GET /api/jobs`` shows it: ``encoded`` (``encoded_summary(state)``), with
    ``status`` and ``progress`` present, null, when the file has none."""
    missing = [member for key, member in _NULL_MEMBERS if state.document.get(key) is None]
    if not missing:
        return encoded
    # ``encoded`` is a non-empty object (it has job_id): the members go before its "}".
    return b"".join((encoded[:-1], b",", b",".join(missing), b"}"))


@dataclass(frozen=True, slots=True)
class JobsQuery:
    """What ``GET /api/jobs`` asks for.

    Args:
        statuses: only the jobs whose ``status`` is one of these (exactly); None: every job.
        limit: at most this many jobs; None: all.
        after: only the jobs whose id sorts after this one (the ``next`` of the page before).
    """

    statuses: frozenset[str] | None = None
    limit: int | None = None
    after: str | None = None

    def matches(self, state: JobState) -> bool:
        if self.statuses is None:
            return True
        status = state.document.get("status")
        return isinstance(status, str) and status in self.statuses


def parse_jobs_query(query: Mapping[str, Sequence[str]]) -> JobsQuery | str:
    """The query of ``GET /api/jobs`` (each parameter's values, as given), or why it is refused:
    a short message for a 400. Other parameters (``token``...) are not looked at.

    ``limit``: once, 1 to ``MAX_LIMIT`` in ASCII digits. ``after``: once, a valid job id (one
    that no longer exists is fine: the page starts after where it was). ``status``: up to
    ``MAX_STATUSES`` times, each 1 to ``MAX_STATUS_LENGTH`` characters.
    """
    limit = after = None
    statuses = None
    if "limit" in query:
        values = query["limit"]
        if len(values) != 1 or not _DIGITS.fullmatch(values[0]):
            return INVALID_LIMIT
        limit = int(values[0])
        if not 1 <= limit <= MAX_LIMIT:
            return INVALID_LIMIT
    if "after" in query:
        values = query["after"]
        if len(values) != 1 or not is_valid_job_id(values[0]):
            return INVALID_CURSOR
        after = values[0]
    if "status" in query:
        values = query["status"]
        if not 1 <= len(values) <= MAX_STATUSES or not all(
            1 <= len(v) <= MAX_STATUS_LENGTH for v in values
        ):
            return INVALID_STATUS
        statuses = frozenset(values)
    return JobsQuery(statuses=statuses, limit=limit, after=after)
