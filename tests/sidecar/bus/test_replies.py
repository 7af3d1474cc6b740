"""One read of a node's stream: each job's latest state is taken, not every one before it;
what ends a job, history and other jobs keep their place."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sidecar.bus import wire
from sidecar.bus.replies import latest_states
from sidecar.core.events import JobGone, JobPublished
from sidecar.core.state import JobState


def state(job: str, step: int) -> JobPublished:
    document = {"status": "running", "current_step": step}
    return JobPublished("n", job, JobState(job, document, 1.7e9, has_file=True), "e", step, True)


def gone(job: str) -> JobGone:
    return JobGone("n", job)


def history(job: str) -> wire.History:
    return wire.History("n", job, (b"{}",), wire.HistoryMark("e", 0, 1), False)


def test_only_the_latest_state_of_a_job_is_taken() -> None:
    a1, b1, a2, h, a3 = state("a", 1), state("b", 1), state("a", 2), history("a"), state("a", 3)
    taken = [m for m, _size in latest_states([(m, 10) for m in (a1, b1, a2, h, a3)])]
    assert taken == [b1, h, a3]


def test_a_state_before_the_jobs_end_is_kept() -> None:
    a1, g, a2 = state("a", 1), gone("a"), state("a", 2)
    taken = [m for m, _size in latest_states([(m, 1) for m in (a1, g, a2)])]
    assert taken == [a1, g, a2]


def replay(messages: list[wire.Message]) -> dict[str, int | None]:
    """What a reader ends up showing: each job's latest step, None once gone."""
    shown: dict[str, int | None] = {}
    for message in messages:
        if isinstance(message, JobPublished):
            shown[message.job_id] = message.seq
        elif isinstance(message, JobGone):
            shown[message.job_id] = None
    return shown


events = st.lists(
    st.tuples(
        st.sampled_from(["state", "state", "state", "gone", "history"]), st.sampled_from("abc")
    ),
    max_size=40,
)


@given(events)
def test_what_is_shown_in_the_end_is_the_same(plan: list[tuple[str, str]]) -> None:
    make = {"state": lambda job, i: state(job, i), "gone": lambda job, i: gone(job),
            "history": lambda job, i: history(job)}  # fmt: skip
    messages = [make[kind](job, i) for i, (kind, job) in enumerate(plan)]
    taken = [m for m, _size in latest_states([(m, 1) for m in messages])]
    assert replay(taken) == replay(messages)
    # The order of everything taken is the stream's; nothing but superseded states is left out.
    assert [m for m in messages if m in taken] == taken
    left_out = [m for m in messages if m not in taken]
    assert all(isinstance(m, JobPublished) for m in left_out)
    # At most one state a job between two of its ends.
    ends = sum(kind == "gone" for kind, _job in plan)
    assert sum(isinstance(m, JobPublished) for m in taken) <= len({j for _k, j in plan}) + ends
