"""The versions kept to resume clients from: bounded in count and in bytes, per job and in all."""

from __future__ import annotations

import collections

from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.events import JobGone, JobSeen
from sidecar.core.hub import JobHub
from sidecar.core.kept_versions import VERSION_OVERHEAD, KeptVersions

T0 = 1_762_432_200.0


def body(size: int, mark: int = 0) -> bytes:
    """An encoded body that costs ``size`` bytes once kept."""
    return str(mark).encode().ljust(size - VERSION_OVERHEAD, b"x")


def names(kept: KeptVersions, job_id: str, upto: int) -> list[int]:
    """Which of the versions 1..upto of a job are kept."""
    return [seq for seq in range(1, upto + 1) if kept.find(job_id, ("e", seq)) is not None]


def test_kept_versions_drop_a_jobs_oldest_past_its_bytes() -> None:
    kept = KeptVersions(depth=100, job_bytes=3000, total_bytes=10**9)
    for seq in range(1, 6):
        kept.keep("a", ("e", seq), body(1000, seq))
    assert names(kept, "a", 5) == [3, 4, 5]
    assert kept.size == 3000 and len(kept) == 3
    assert kept.find("a", ("e", 5)) == body(1000, 5)


def test_kept_versions_drop_the_oldest_of_all_jobs_past_the_total() -> None:
    kept = KeptVersions(depth=100, job_bytes=10**9, total_bytes=4000)
    kept.keep("a", ("e", 1), body(1000))
    kept.keep("b", ("e", 2), body(1000))
    kept.keep("a", ("e", 3), body(1000))
    kept.keep("b", ("e", 4), body(1000))
    kept.keep("c", ("e", 5), body(1000))  # the oldest of all, a's first, makes room
    assert names(kept, "a", 5) == [3] and names(kept, "b", 5) == [2, 4]
    assert names(kept, "c", 5) == [5] and kept.size == 4000
    kept.keep("c", ("e", 6), body(2000))  # then b's first, then a's
    assert names(kept, "a", 6) == [] and names(kept, "b", 6) == [4]
    assert names(kept, "c", 6) == [5, 6] and kept.size == 4000


def test_kept_versions_keep_at_most_depth_of_a_job() -> None:
    kept = KeptVersions(depth=3, job_bytes=10**9, total_bytes=10**9)
    for seq in range(1, 11):
        kept.keep("a", ("e", seq), body(300))
    assert names(kept, "a", 10) == [8, 9, 10] and kept.size == 900


def test_kept_versions_of_a_job_gone_free_their_bytes() -> None:
    kept = KeptVersions(depth=100, job_bytes=10**9, total_bytes=3000)
    kept.keep("a", ("e", 1), body(1000))
    kept.keep("a", ("e", 2), body(1000))
    kept.keep("b", ("e", 3), body(1000))
    kept.forget("a")
    assert kept.size == 1000 and len(kept) == 1 and kept.find("a", ("e", 2)) is None
    kept.keep("b", ("e", 4), body(1000))
    kept.keep("b", ("e", 5), body(1000))  # a's slots are skipped: b's own first stays
    assert names(kept, "b", 5) == [3, 4, 5]


def test_a_version_larger_than_the_budget_is_not_kept_and_costs_nothing() -> None:
    kept = KeptVersions(depth=100, job_bytes=1000, total_bytes=10**9)
    kept.keep("a", ("e", 1), body(500))
    kept.keep("a", ("e", 2), body(5000))
    assert names(kept, "a", 2) == [1] and kept.size == 500


def test_kept_versions_bookkeeping_stays_bounded_when_the_jobs_own_limits_drop_them() -> None:
    """Slots of versions dropped by a job's own limits are swept: O(1) memory per kept version."""
    kept = KeptVersions(depth=2, job_bytes=10**9, total_bytes=10**9)
    for seq in range(1, 20_001):
        kept.keep(f"job{seq % 10}", ("e", seq), b"{}")
    assert len(kept) == 20
    assert len(kept._order) <= 2 * len(kept) + 1024


class Naive:
    """The same rules, by brute force: every version kept in one list, oldest first."""

    def __init__(self, depth: int, job_bytes: int, total_bytes: int) -> None:
        self.depth, self.job_bytes, self.total_bytes = depth, job_bytes, total_bytes
        self.versions: list[tuple[str, int, int]] = []  # (job, seq, cost)

    def keep(self, job_id: str, seq: int, cost: int) -> None:
        if cost > min(self.job_bytes, self.total_bytes):
            return
        self.versions.append((job_id, seq, cost))
        mine = [v for v in self.versions if v[0] == job_id]
        while len(mine) > self.depth or sum(v[2] for v in mine) > self.job_bytes:
            self.versions.remove(mine.pop(0))
        while sum(v[2] for v in self.versions) > self.total_bytes:
            self.versions.pop(0)

    def forget(self, job_id: str) -> None:
        self.versions = [v for v in self.versions if v[0] != job_id]


@given(
    st.integers(1, 5),
    st.integers(300, 3000),
    st.integers(300, 6000),
    st.lists(st.tuples(st.sampled_from("abcd"), st.integers(300, 1500), st.booleans())),
)
def test_kept_versions_keep_what_the_rules_say_whatever_the_sequence(
    depth: int, job_bytes: int, total_bytes: int, steps: list[tuple[str, int, bool]]
) -> None:
    kept, naive = (
        KeptVersions(depth=depth, job_bytes=job_bytes, total_bytes=total_bytes),
        Naive(depth, job_bytes, total_bytes),
    )
    for seq, (job_id, size, remove) in enumerate(steps, 1):
        if remove:
            kept.forget(job_id)
            naive.forget(job_id)
        else:
            kept.keep(job_id, ("e", seq), body(size, seq))
            naive.keep(job_id, seq, size)
        expected = collections.defaultdict(list)
        for job, kept_seq, _cost in naive.versions:
            expected[job].append(kept_seq)
        for job in "abcd":
            assert names(kept, job, seq) == expected[job]
        assert kept.size == sum(v[2] for v in naive.versions) <= total_bytes
        assert len(kept) == len(naive.versions)


def seen(job_id: str, step: int, padding: int = 0) -> JobSeen:
    return JobSeen("local", job_id, {"status": "running", "step": step, "pad": "x" * padding}, T0)


def test_hub_resumes_from_the_current_version_without_keeping_it() -> None:
    hub = JobHub()
    hub.apply(seen("j", 1))
    version = hub.version("j")
    assert version is not None
    assert hub.resume_base("j", version.id) == version.body
    assert hub.kept_versions.size == 0  # the current version is the job's state, not a copy


def test_hub_resume_from_a_version_out_of_the_byte_budget_is_none() -> None:
    """None: the client gets a snapshot (as for a version older than ``RESUME_DEPTH``)."""
    hub = JobHub(resume_bytes_per_job=30_000, resume_bytes=10**9)
    hub.apply(seen("j", 1, padding=10_000))
    first = hub.version("j")
    hub.apply(seen("j", 2, padding=10_000))
    second = hub.version("j")
    assert first is not None and second is not None
    assert hub.resume_base("j", first.id) == first.body  # kept while within the budget
    for step in range(3, 6):
        hub.apply(seen("j", step, padding=10_000))
    assert hub.resume_base("j", first.id) is None
    assert hub.subscribe("j", since=first.id).resume_base is None
    assert hub.kept_versions.size <= 30_000


def test_hub_frees_the_kept_versions_of_a_job_removed() -> None:
    hub = JobHub(resume_bytes_per_job=10**6, resume_bytes=10**6)
    for step in range(1, 5):
        hub.apply(seen("a", step, padding=1000))
        hub.apply(seen("b", step, padding=1000))
    before = hub.kept_versions.size
    hub.apply(JobGone("local", "a"))
    assert 0 < hub.kept_versions.size < before and hub.kept_versions.find("a", ("x", 1)) is None
    hub.apply(JobGone("local", "b"))
    assert hub.kept_versions.size == 0


def test_hub_keeps_the_versions_of_all_jobs_within_the_total() -> None:
    hub = JobHub(resume_bytes_per_job=10**6, resume_bytes=50_000)
    for step in range(1, 30):
        for job_id in ("a", "b", "c"):
            hub.apply(seen(job_id, step, padding=5000))
    assert 40_000 < hub.kept_versions.size <= 50_000
