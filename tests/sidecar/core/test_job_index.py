"""The hub's indexes over many jobs: the stall sweep's candidates, the ids in order, and the
per-job memory of jobs nobody follows (issue 20, point 6)."""

from __future__ import annotations

import gc
import random
import tracemalloc
from typing import Any

import pytest

from sidecar.core import hub as hub_module
from sidecar.core.events import JobGone, JobPublished, JobSeen
from sidecar.core.hub import JobHub
from sidecar.core.state import PENDING_DOCUMENT, JobState

T0 = 1_762_432_200.0


def seen(job_id: str, document: dict[str, Any] | None = None, *, at: float = T0) -> JobSeen:
    """What the file source says of a job: a file's document, or pending (no file)."""
    if document is None:
        return JobSeen("here", job_id, PENDING_DOCUMENT, at, has_file=False)
    return JobSeen("here", job_id, document, at)


def test_sweep_looks_only_at_jobs_the_stall_rule_can_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """10,000 pending jobs and four others: a sweep applies the rule to the three running jobs
    of this node, not to every job; the index follows each job's state and owner."""
    now = [T0]
    hub = JobHub(node="here", stall_after=60, clock=lambda: now[0])
    for j in range(10_000):
        hub.apply(seen(f"pending{j:05d}"))
    for job_id in ("run1", "run2", "run3"):
        hub.apply(seen(job_id, {"status": "running", "step": 1}))
    hub.apply(seen("done", {"status": "completed"}))
    other = JobState("theirs", {"status": "running"}, T0, has_file=True, node="there")
    hub.apply(JobPublished("there", "theirs", other, "e", 1))
    assert hub.stall_candidates == {"run1", "run2", "run3"}

    looked_at: list[str] = []
    with_stall = hub_module.with_stall

    def counting(state: JobState, **rule: Any) -> JobState:
        looked_at.append(state.job_id)
        return with_stall(state, **rule)

    monkeypatch.setattr(hub_module, "with_stall", counting)
    now[0] = T0 + 61
    assert hub.sweep() == 3
    assert sorted(looked_at) == ["run1", "run2", "run3"]
    assert all(state.stalled for state in hub.states() if state.job_id.startswith("run"))

    hub.apply(seen("pending00007", {"status": "running"}, at=now[0]))  # a file came
    hub.apply(seen("run1", {"status": "completed"}, at=now[0]))
    hub.apply(JobGone("here", "run2"))
    assert hub.stall_candidates == {"run3", "pending00007"}


def test_job_ids_stay_sorted_as_jobs_come_and_go() -> None:
    """In order, each once, whatever the order of comings, goings and comings back; a list
    handed out is never changed after (a listing walks it while jobs change)."""
    rng = random.Random(20)
    hub = JobHub(node="here")
    present: set[str] = set()
    handed: list[tuple[list[str], list[str]]] = []
    for step in range(3000):
        job_id = f"job{rng.randrange(400):04d}"
        if job_id in present and rng.random() < 0.4:
            hub.apply(JobGone("here", job_id))
            present.discard(job_id)
        else:
            hub.apply(seen(job_id, {"status": "running", "step": step}))
            present.add(job_id)
        if step % 97 == 0:
            ids = hub.job_ids()
            assert ids == sorted(present)
            handed.append((ids, list(ids)))
    for ids, copy in handed:
        assert ids == copy


def test_ids_that_come_in_order_are_appended() -> None:
    """A scan's new jobs come sorted: the order is then made without a sort of everything (the
    list grows by the new ids; one that comes out of order is merged in)."""
    hub = JobHub(node="here")
    for j in range(1000):
        hub.apply(seen(f"job{j:04d}"))
    first = hub.job_ids()
    assert first == [f"job{j:04d}" for j in range(1000)]
    hub.apply(seen("job0500b"))
    hub.apply(seen("aaa"))
    assert hub.job_ids() == sorted([*first, "job0500b", "aaa"])


def test_jobs_nobody_follows_cost_little_memory() -> None:
    """100,000 pending jobs must fit in a few hundred MB: a pending job nobody follows holds no
    document of its own (they share one) and no empty set of clients or counts by address."""
    hub = JobHub(node="here")
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for j in range(5000):
            hub.apply(seen(f"job{j:05d}"))
        per_job = (tracemalloc.get_traced_memory()[0] - before) / 5000
    finally:
        tracemalloc.stop()
    # Measured: 1,260 bytes a job before (a document of its own, the hub's null-dropping copy,
    # and an empty set and an empty Counter), 800 after.
    assert per_job < 1000, f"{per_job:.0f} bytes a pending job"
    subscriber = hub.subscribe("job00001", address="10.0.0.1")
    hub.unsubscribe(subscriber)
    assert hub.subscribe("job00001", address="10.0.0.1").job_id == "job00001"
