"""``GET /api/jobs``'s body: the jobs list, or a page of it, made and sent a slice at a time.

Every summary is encoded once per state (``JobHub.listed``) and the ids are kept in order
(``JobHub.job_ids``), so a listing only joins bytes; it does so a slice at a time (``slices.in_slices``),
and each slice goes out as one chunk of the response (aiohttp waits for the client to take it
before the next). A listing of 100,000 jobs (15 MB) thus never holds the other clients up for
more than a few ms. It is not one atomic picture: a job that changes while it is being listed
shows its state when its slice is made, and one added meanwhile before the slice under way is
left out; no job is listed twice.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import AsyncIterator, Iterator

from sidecar.core.codec import encode
from sidecar.core.hub import JobHub
from sidecar.core.listing import JobsQuery, rest_summary
from sidecar.server.slices import in_slices


def listing_body(hub: JobHub, query: JobsQuery) -> AsyncIterator[bytes]:
    """``{"jobs": [...]}`` (with ``"next"``: the last id of a full page when more follow), in
    chunks, each the jobs of one slice (``in_slices``)."""
    return in_slices(_listing(hub, query))


def _listing(hub: JobHub, query: JobsQuery) -> Iterator[bytes]:
    """The listing's pieces, one per job looked at (empty for a job left out); each is made
    when taken, so that a job's piece shows the state it has at its slice."""
    ids = hub.job_ids()
    at = bisect_right(ids, query.after) if query.after is not None else 0
    limit = query.limit
    yield b'{"jobs":['
    count = 0
    last: str | None = None
    following: str | None = None
    for index in range(at, len(ids)):
        job_id = ids[index]
        state = hub.get(job_id)
        if state is None or not query.matches(state):
            yield b""
            continue
        if limit is not None and count == limit:
            following = last  # a job follows the full page: say where to go on
            break
        encoded = hub.listed(job_id)
        assert encoded is not None  # the job is there: no await since ``get``
        yield b"".join((b"," if count else b"", rest_summary(state, encoded)))
        count += 1
        last = job_id
    yield b"]" if following is None else b"".join((b'],"next":', encode(following)))
    yield b"}"
