"""The jobs list's pure parts: summaries encoded once, and the query of GET /api/jobs."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from sidecar.core.codec import drop_nulls
from sidecar.core.listing import (
    INVALID_CURSOR,
    INVALID_LIMIT,
    INVALID_STATUS,
    MAX_LIMIT,
    JobsQuery,
    encoded_summary,
    parse_jobs_query,
    rest_summary,
)
from sidecar.core.state import JobState

T0 = 1_762_432_200.0

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
documents = st.dictionaries(
    st.sampled_from(["status", "progress", "loss", "current_step", "error", "other"]),
    json_values,
)


@given(document=documents, stall=st.none() | st.text(), error=st.none() | st.text())
@example(document={}, stall=None, error=None)
def test_the_rest_summary_is_the_summary_as_it_always_was(
    document: dict[str, Any], stall: str | None, error: str | None
) -> None:
    """GET /api/jobs without parameters answers what it did before the summaries were cached:
    ``state.summary()`` of a document as the hub keeps it (nulls dropped), ``status`` and
    ``progress`` null when the file has none; the stream's form leaves nulls out."""
    state = JobState(
        "j", drop_nulls(document), T0, has_file=True, stall_reason=stall, read_error=error
    )
    encoded = encoded_summary(state)
    assert json.loads(rest_summary(state, encoded)) == json.loads(json.dumps(state.summary()))
    assert json.loads(encoded) == drop_nulls(json.loads(json.dumps(state.summary())))


def test_queries_that_mean_something() -> None:
    assert parse_jobs_query({}) == JobsQuery()
    assert parse_jobs_query({"limit": ["10"], "after": ["job-7"]}) == JobsQuery(
        limit=10, after="job-7"
    )
    assert parse_jobs_query({"status": ["running", "failed"]}) == JobsQuery(
        statuses=frozenset({"running", "failed"})
    )
    assert parse_jobs_query({"limit": [str(MAX_LIMIT)]}) == JobsQuery(limit=MAX_LIMIT)


def test_bad_queries_are_refused_with_a_short_reason() -> None:
    for limit in ("0", "-1", "1.5", "1e3", " 5", "5 ", "\u0665", "", "x", str(MAX_LIMIT + 1)):
        assert parse_jobs_query({"limit": [limit]}) == INVALID_LIMIT, limit
    assert parse_jobs_query({"limit": ["1", "2"]}) == INVALID_LIMIT
    for after in ("", "../x", "-a", "a/b", "a" * 200, "\x00"):
        assert parse_jobs_query({"after": [after]}) == INVALID_CURSOR, after
    assert parse_jobs_query({"status": [""]}) == INVALID_STATUS
    assert parse_jobs_query({"status": ["x" * 101]}) == INVALID_STATUS
    assert parse_jobs_query({"status": ["running"] * 17}) == INVALID_STATUS


@given(st.dictionaries(st.sampled_from(["limit", "after", "status", "token"]), st.lists(st.text())))
def test_any_query_is_a_query_or_a_refusal(query: dict[str, list[str]]) -> None:
    """Whatever a client sends, the parser answers a query or one of its three reasons."""
    parsed = parse_jobs_query(query)
    assert isinstance(parsed, JobsQuery) or parsed in (
        INVALID_LIMIT,
        INVALID_CURSOR,
        INVALID_STATUS,
    )


def test_a_status_that_is_no_string_never_matches() -> None:
    query = JobsQuery(statuses=frozenset({"running"}))
    odd = JobState("j", {"status": {"toString": 1}}, T0, has_file=True)
    assert not query.matches(odd)
    assert query.matches(JobState("j", {"status": "running"}, T0, has_file=True))
