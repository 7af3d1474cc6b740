"""The jobs list's feed: every dashboard, idle, busy or far behind, ends with the list as it is,
through the shared messages, the kept ones, or a snapshot."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.jobs_feed import ListFeed, ListMessage, ListViewer
from sidecar.core.patch import apply_merge_patch


def _message(seq: int, change: dict[str, Any]) -> ListMessage:
    text = json.dumps({"seq": seq, "jobs": change}).encode()
    return ListMessage(seq, (text,), frame=text)


def _summaries(values: dict[str, int | None]) -> dict[str, bytes | None]:
    return {job: None if v is None else json.dumps({"v": v}).encode() for job, v in values.items()}


class Dashboard:
    """A dashboard as the server's sender and the tick treat it: one that takes direct frames
    while ``idle``, and otherwise catches up when it gets a turn."""

    def __init__(self, feed: ListFeed) -> None:
        self.feed = feed
        self.viewer = ListViewer()
        self.viewer.direct = self._direct
        self.idle = True
        self.jobs: dict[str, Any] = {}
        self.snapshots = 0
        feed.viewers.add(self.viewer)

    def _direct(self, frame: bytes) -> bool:
        if not self.idle:
            return False
        self._apply(json.loads(frame))
        return True

    def _apply(self, message: dict[str, Any]) -> None:
        assert message["seq"] == self.viewer.seq + 1 if self.viewer.seq is not None else True
        self.jobs = apply_merge_patch(self.jobs, message["jobs"])

    def catch_up(self) -> None:
        behind = None if self.viewer.seq is None else self.feed.since(self.viewer.seq)
        if behind is None:
            self.snapshots += 1
            self.jobs = {k: json.loads(v) for k, v in self.feed.listed.items()}
            self.viewer.seq = self.feed.seq
            return
        for message in behind:
            self._apply(json.loads(message.pieces[0]))
            self.viewer.seq = message.seq


jobs = st.sampled_from(["a", "b", "c", "d"])
ticks = st.lists(
    st.tuples(
        st.dictionaries(jobs, st.one_of(st.none(), st.integers(0, 3)), min_size=1),
        st.lists(st.booleans(), min_size=3, max_size=3),  # each dashboard idle or busy
        st.lists(st.booleans(), min_size=3, max_size=3),  # each busy one gets a turn
    ),
    max_size=40,
)


@given(ticks, st.integers(1, 4))
@settings(max_examples=300, deadline=None)
def test_every_dashboard_ends_with_the_list_as_it_is(
    plan: list[tuple[dict[str, int | None], list[bool], list[bool]]], max_kept: int
) -> None:
    feed = ListFeed(max_kept=max_kept)
    dashboards = [Dashboard(feed) for _ in range(3)]
    for dashboard in dashboards:
        dashboard.catch_up()
    for values, idle, turns in plan:
        for dashboard, now_idle in zip(dashboards, idle, strict=True):
            dashboard.idle = now_idle
        summaries = _summaries(values)
        before = dict(feed.listed)
        change = {
            job: None if s is None else json.loads(s)
            for job, s in summaries.items()
            if before.get(job) != s
        }
        feed.advance(summaries, _message(feed.seq + 1, change) if change else None)
        for dashboard, turn in zip(dashboards, turns, strict=True):
            if turn and not dashboard.idle:
                dashboard.catch_up()
    expected = {k: json.loads(v) for k, v in feed.listed.items()}
    for dashboard in dashboards:
        dashboard.catch_up()
        assert dashboard.jobs == expected
        assert dashboard.viewer.seq == feed.seq


def test_an_idle_dashboard_is_handed_each_frame_and_a_busy_one_is_woken() -> None:
    feed = ListFeed()
    idle, busy = Dashboard(feed), Dashboard(feed)
    idle.catch_up(), busy.catch_up()
    busy.viewer.busy = True
    busy.viewer._wake.clear()
    idle.viewer._wake.clear()
    feed.advance(_summaries({"a": 1}), _message(1, {"a": {"v": 1}}))
    assert (idle.viewer.seq, idle.jobs, idle.viewer._wake.is_set()) == (1, {"a": {"v": 1}}, False)
    assert (busy.viewer.seq, busy.viewer._wake.is_set()) == (0, True)
    assert [m.seq for m in feed.since(0) or []] == [1]


def test_the_kept_messages_are_bounded_and_a_dashboard_behind_them_needs_a_snapshot() -> None:
    feed = ListFeed(max_kept=3, max_kept_bytes=10_000)
    for seq in range(1, 11):
        feed.advance(_summaries({"a": seq}), _message(seq, {"a": {"v": seq}}))
    assert [m.seq for m in feed.since(7) or []] == [8, 9, 10]
    assert feed.since(6) is None and feed.since(10) == []
    big = ListFeed(max_kept=50, max_kept_bytes=100)
    for seq in range(1, 6):
        big.advance(_summaries({"a": seq}), _message(seq, {"a": {"v": seq, "pad": "x" * 60}}))
    assert [m.seq for m in big.since(4) or []] == [5]  # one over the bytes: the latest only
    assert big.since(3) is None


def test_a_tick_made_for_nobody_leaves_only_snapshots() -> None:
    feed = ListFeed()
    feed.advance(_summaries({"a": 1}), _message(1, {"a": {"v": 1}}))
    feed.advance(_summaries({"a": 2}), None)
    assert feed.since(0) is None and feed.since(1) is None and feed.since(2) == []
