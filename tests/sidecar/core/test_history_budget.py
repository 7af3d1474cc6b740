"""Histories in memory: released when nobody follows them, bounded in bytes in all jobs."""

from __future__ import annotations

from sidecar.core.events import HistoryLines, JobGone, JobSeen
from sidecar.core.history_budget import HistoryBudget
from sidecar.core.history_log import ENTRY_OVERHEAD, HistoryLog
from sidecar.core.hub import JobHub

T0 = 1_762_432_200.0


def entry(size: int, mark: int = 0) -> bytes:
    """An entry whose footprint is ``size``."""
    return (b'{"step":%d}' % mark).ljust(size - ENTRY_OVERHEAD, b" ")


def log_of(weight: int, *, entries: int = 10) -> HistoryLog:
    log = HistoryLog(max_entries=10**6, max_bytes=10**9)
    log.extend([entry(weight // entries, i) for i in range(entries)])
    return log


def test_history_log_trim_drops_its_oldest_entries_and_keeps_its_place() -> None:
    log = log_of(1000)
    log.trim(450)
    assert log.footprint == 400 and len(log.entries) == 4
    assert log.entries[0] == entry(100, 6) and log.total == 10
    assert log.since(8) == [entry(100, 8), entry(100, 9)]


def test_history_budget_releases_a_history_nobody_follows_after_the_grace() -> None:
    budget = HistoryBudget(total_bytes=10**6, grace=10)
    budget.used("a", 100.0)
    budget.hold("a", log_of(1000))
    budget.used("b", 105.0)
    budget.hold("b", log_of(1000))
    assert budget.size == 2000 and len(budget) == 2
    assert budget.due(109.9, followed=lambda job_id: False) == []
    assert budget.due(110.0, followed=lambda job_id: False) == ["a"]
    assert budget.size == 1000 and len(budget) == 1 and budget.released == 1
    budget.used("b", 112.0)  # used again: its grace starts over
    assert budget.due(119.0, followed=lambda job_id: False) == []
    assert budget.due(122.0, followed=lambda job_id: False) == ["b"] and budget.size == 0


def test_history_budget_keeps_a_history_someone_follows() -> None:
    budget = HistoryBudget(total_bytes=10**6, grace=10)
    budget.used("a", 100.0)
    budget.hold("a", log_of(1000))
    assert budget.due(200.0, followed=lambda job_id: True) == []
    assert budget.due(300.0, followed=lambda job_id: False) == []  # until it is used again
    budget.used("a", 300.0)  # (the follower left)
    assert budget.due(310.0, followed=lambda job_id: False) == ["a"]


def test_history_budget_over_its_bytes_drops_the_least_recently_used_unfollowed_first() -> None:
    budget = HistoryBudget(total_bytes=3500, grace=10)
    for at, job_id in enumerate("abc"):
        budget.used(job_id, 100.0 + at)
        budget.hold(job_id, log_of(1000))
    budget.used("a", 110.0)  # a is now the most recently used
    budget.used("d", 111.0)
    budget.hold("d", log_of(1000))
    followed = {"b"}
    assert budget.over_budget(followed=followed.__contains__) == ["c"]
    assert budget.size == 3000 and len(budget) == 3


def test_history_budget_trims_the_largest_followed_histories_when_none_is_unfollowed() -> None:
    budget = HistoryBudget(total_bytes=8000, grace=10)
    logs = {"big": log_of(6000, entries=60), "mid": log_of(5000, entries=50)}
    logs["small"] = log_of(500, entries=5)
    for job_id, log in logs.items():
        budget.used(job_id, 100.0)
        budget.hold(job_id, log)
    assert budget.over_budget(followed=lambda job_id: True) == []
    # Down to 7/8 of the budget (7000): the two largest to one level, the small one untouched.
    assert budget.size <= 7000 and budget.size == sum(log.footprint for log in logs.values())
    assert logs["small"].footprint == 500
    assert logs["big"].footprint == logs["mid"].footprint == 3200
    assert logs["big"].total == 60  # a reader's place holds
    budget.hold("other", log_of(1000))
    assert budget.over_budget(followed=lambda job_id: True) == []  # 7,900: within the budget
    assert logs["big"].footprint == 3200


def seen(job_id: str) -> JobSeen:
    return JobSeen("here", job_id, {"status": "running"}, T0)


def lines(count: int, size: int = 200) -> tuple[bytes, ...]:
    return tuple(entry(size, i) for i in range(count))


class Interest:
    """What a source hears from the hub's ``history_interest``."""

    def __init__(self, hub: JobHub) -> None:
        self.heard: list[tuple[str, str]] = []
        hub.history_interest.listen(
            lambda job_id: self.heard.append(("wanted", job_id)),
            unwanted=lambda job_id: self.heard.append(("unwanted", job_id)),
        )


def test_hub_releases_a_history_nobody_follows_and_its_source_stops_following_it() -> None:
    now = [1000.0]
    hub = JobHub(node="here", clock=lambda: now[0], history_grace=10)
    interest = Interest(hub)
    hub.apply(seen("j"))
    assert hub.histories.use("j") is None  # a REST request's first look
    hub.apply(HistoryLines("here", "j", lines(10), reset=True))
    assert hub.histories.budget.size == 2000 and len(hub.histories.budget) == 1
    now[0] += 9
    assert hub.histories.release_idle() == 0
    now[0] += 1
    assert hub.histories.release_idle() == 1
    assert interest.heard == [("wanted", "j"), ("unwanted", "j")]
    assert hub.histories.budget.size == 0 and len(hub.histories.budget) == 0
    hub.apply(HistoryLines("here", "j", lines(3)))  # late lines of a history let go: ignored
    assert hub.histories.budget.size == 0
    assert hub.histories.use("j") is None  # wanted again: read again, from the start
    assert interest.heard[-1] == ("wanted", "j")
    hub.apply(HistoryLines("here", "j", lines(12), reset=True))
    log = hub.histories.use("j")
    assert log is not None and len(log.entries) == 12


def test_hub_holds_a_history_while_a_client_follows_it_and_releases_it_after() -> None:
    now = [1000.0]
    hub = JobHub(node="here", clock=lambda: now[0], history_grace=10)
    interest = Interest(hub)
    hub.apply(seen("j"))
    subscription = hub.subscribe("j", history=True)
    hub.apply(HistoryLines("here", "j", lines(10), reset=True))
    now[0] += 3600
    assert hub.histories.release_idle() == 0 and subscription.history_log is not None
    hub.unsubscribe(subscription)
    now[0] += 9
    assert hub.histories.release_idle() == 0
    now[0] += 1
    assert hub.histories.release_idle() == 1
    assert interest.heard[-1] == ("unwanted", "j")


def test_hub_a_nodes_publisher_follows_the_histories_of_the_nodes_own_jobs() -> None:
    """On a cluster node every history of its own jobs goes to the bus: never let go unused."""
    now = [1000.0]
    hub = JobHub(node="here", clock=lambda: now[0], history_grace=10)
    watch = hub.watch_all()
    hub.apply(seen("j"))
    hub.histories.use("j")
    hub.apply(HistoryLines("here", "j", lines(10), reset=True))
    now[0] += 3600
    assert hub.histories.release_idle() == 0 and hub.histories.budget.size == 2000
    hub.unwatch_jobs(watch)  # the publisher stops: the histories nobody else follows go
    now[0] += 10
    assert hub.histories.release_idle() == 1 and hub.histories.budget.size == 0


def test_hub_keeps_all_histories_within_their_bytes_unfollowed_ones_first() -> None:
    now = [1000.0]
    hub = JobHub(node="here", clock=lambda: now[0], history_bytes=10_000, history_grace=10)
    interest = Interest(hub)
    for job_id in ("followed", "old", "new"):
        hub.apply(seen(job_id))
    subscription = hub.subscribe("followed", history=True)
    hub.apply(HistoryLines("here", "followed", lines(20), reset=True))
    hub.histories.use("old")
    hub.apply(HistoryLines("here", "old", lines(20), reset=True))
    now[0] += 1
    hub.histories.use("new")
    hub.apply(HistoryLines("here", "new", lines(20), reset=True))  # 12,000: over
    assert ("unwanted", "old") in interest.heard and hub.histories.use("old") is None
    assert hub.histories.budget.size == 8000
    hub.apply(HistoryLines("here", "followed", lines(40)))  # 16,000: "new" goes, then a trim
    assert ("unwanted", "new") in interest.heard
    log = subscription.history_log
    assert log is not None and log.total == 60 and log.footprint == hub.histories.budget.size
    assert hub.histories.budget.size <= 10_000 * 7 // 8


def test_hub_frees_the_history_bytes_of_a_job_removed() -> None:
    hub = JobHub(node="here")
    hub.apply(seen("j"))
    hub.histories.use("j")
    hub.apply(HistoryLines("here", "j", lines(10), reset=True))
    assert hub.histories.budget.size == 2000
    hub.apply(JobGone("here", "j"))
    assert hub.histories.budget.size == 0 and len(hub.histories.budget) == 0
