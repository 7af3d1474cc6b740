from __future__ import annotations

import json
from typing import Any

import pytest

from sidecar.core.client_limits import TooManyClients
from sidecar.core.events import HistoryLines, JobGone, JobSeen
from sidecar.core.hub import JobHub, UnknownJob
from sidecar.core.patch import apply_merge_patch
from sidecar.core.protocol import ENVELOPE_KEYS
from sidecar.core.version import Version

T0 = 1_762_432_200.0


def hub_at_t0(**limits: int) -> JobHub:
    return JobHub(clock=lambda: T0, **limits)


def seen(hub: JobHub, job_id: str = "j", **fields: Any) -> None:
    """The job as its source read it (the one way in: ``apply``)."""
    hub.apply(JobSeen(hub.node, job_id, {"status": "running", **fields}, T0))


def decode(frame: bytes) -> dict[str, Any]:
    message = json.loads(frame)
    assert isinstance(message, dict)
    return message


def test_put_numbers_versions_and_skips_no_change() -> None:
    hub = hub_at_t0()
    seen(hub, step=1)
    first = hub.version("j")
    assert first is not None
    seen(hub, step=1)
    assert hub.version("j") is first
    seen(hub, step=2)
    second = hub.version("j")
    assert second is not None and second.seq > first.seq


def test_seq_keeps_increasing_when_a_job_comes_back() -> None:
    hub = hub_at_t0()
    seen(hub, step=1)
    before = hub.version("j")
    hub.apply(JobGone(hub.node, "j"))
    seen(hub, step=1)
    after = hub.version("j")
    assert before is not None and after is not None and after.seq > before.seq


def test_frames_are_encoded_once_and_shared() -> None:
    hub = hub_at_t0()
    seen(hub, step=1)
    first = hub.version("j")
    seen(hub, step=2)
    second = hub.version("j")
    assert first is not None and second is not None
    assert second.patch_frame(first) is second.patch_frame(first)
    assert second.snapshot_frame() is second.snapshot_frame()
    assert decode(second.patch_frame(first)) == {
        "type": "patch",
        "job_id": "j",
        "epoch": hub.epoch,
        "seq": second.seq,
        "timestamp": "2025-11-06T12:30:00.000Z",
        "step": 2,
    }


def test_patch_for_a_client_that_skipped_versions() -> None:
    hub = hub_at_t0()
    seen(hub, a=1, b=2)
    known = hub.version("j")
    seen(hub, a=2, b=2)
    seen(hub, a=2, c=3)
    latest = hub.version("j")
    assert known is not None and latest is not None
    patch = decode(latest.patch_frame(known))
    client = apply_merge_patch(
        {k: v for k, v in decode(known.snapshot_frame()).items() if k not in ENVELOPE_KEYS},
        {k: v for k, v in patch.items() if k not in ENVELOPE_KEYS},
    )
    assert client == latest.body
    assert patch["b"] is None


def test_version_patch_from_an_unrelated_version_is_correct() -> None:
    a = Version(1, {"job_id": "j", "timestamp": "t", "x": 1}, None)
    b = Version(2, {"job_id": "j", "timestamp": "t", "x": 2}, a)
    c = Version(3, {"job_id": "j", "timestamp": "t", "y": 1}, b)
    assert decode(c.patch_frame(a))["x"] is None
    assert decode(c.patch_frame(b)) == {
        "type": "patch",
        "job_id": "j",
        "epoch": "0",
        "seq": 3,
        "timestamp": "t",
        "x": None,
        "y": 1,
    }


async def test_subscription_wakes_on_new_versions_and_removal() -> None:
    hub = hub_at_t0()
    seen(hub, step=1)
    sub = hub.subscribe("j")
    await sub.wait()  # a new subscription has something to send at once
    assert sub.version is hub.version("j")
    seen(hub, step=2)
    seen(hub, step=3)
    await sub.wait()
    version = sub.version
    assert version is not None and version.body["step"] == 3
    hub.apply(JobGone(hub.node, "j"))
    await sub.wait()
    assert sub.version is None


def test_limits() -> None:
    hub = hub_at_t0(max_clients=3, max_clients_per_job=2)
    seen(hub, "a")
    seen(hub, "b")
    with pytest.raises(UnknownJob):
        hub.subscribe("c")
    subs = [hub.subscribe("a"), hub.subscribe("a")]
    with pytest.raises(TooManyClients, match="too many clients for this job"):
        hub.subscribe("a")
    subs.append(hub.subscribe("b"))
    with pytest.raises(TooManyClients, match=r"^too many clients$"):
        hub.subscribe("b")
    assert hub.client_count == 3
    for sub in subs:
        hub.unsubscribe(sub)
        hub.unsubscribe(sub)  # twice is harmless
    assert hub.client_count == 0


def test_one_address_cannot_take_a_whole_job() -> None:
    hub = hub_at_t0(max_clients_per_job=4, max_clients_per_address=2)
    seen(hub, "a")
    seen(hub, "b")
    mine = [hub.subscribe("a", address="10.0.0.1") for _ in range(2)]
    with pytest.raises(TooManyClients, match="too many clients for this job from this address"):
        hub.subscribe("a", address="10.0.0.1")
    hub.subscribe("b", address="10.0.0.1")  # the limit is per job
    others = [hub.subscribe("a", address="10.0.0.2"), hub.subscribe("a")]
    hub.unsubscribe(mine[0])
    hub.subscribe("a", address="10.0.0.1")  # a slot freed is a slot to take
    with pytest.raises(TooManyClients, match=r"for this job$"):
        hub.subscribe("a", address="10.0.0.3")  # the job's own limit still holds
    assert len(others) == 2


def test_hub_driven_by_a_plain_list_of_events() -> None:
    """A fake source: events alone, no files and no loop of the hub's own."""
    now = [1000.0]
    hub = JobHub(stall_after=30, clock=lambda: now[0])
    wanted: list[str] = []
    hub.history_interest.listen(wanted.append)
    events = [
        JobSeen("node-a", "a", {"status": "pending"}, 990.0, has_file=False),
        JobSeen("node-a", "a", {"status": "running", "step": 1, "loss": None}, 995.0),
        JobSeen("node-a", "b", {"status": "running", "step": 7}, 995.0),
        JobSeen("node-a", "a", {"status": "running", "step": 2}, 999.0),
        JobSeen("node-a", "a", {"status": "running", "step": 2}, 999.0, read_error="empty file"),
        JobGone("node-a", "b"),
    ]
    for event in events:
        hub.apply(event)
    assert "b" not in hub and len(hub) == 1
    version = hub.version("a")
    assert version is not None
    assert version.body["step"] == 2 and version.body["read_error"] == "empty file"
    assert "loss" not in version.body  # nulls dropped: a merge patch cannot carry them
    assert version.index == 3  # pending, step 1, step 2, the error: one version each
    sub = hub.subscribe("a", history=True)
    assert wanted == ["a"]  # the hub asks; the history comes back as events
    hub.apply(HistoryLines("node-a", "a", (b'{"step":1}', b'{"step":2}'), reset=True))
    log = sub.history_log
    assert log is not None and list(log.entries) == [b'{"step":1}', b'{"step":2}']
    # Stall is derived in the hub, from when the job last changed.
    now[0] = 999.0 + 30
    assert hub.sweep() == 1
    state = hub.get("a")
    assert state is not None and state.stall_reason == "no update for 30 s"


def test_a_subscription_that_fails_on_the_way_is_not_counted() -> None:
    """A source that raises when asked for a history leaves no client counted (a leak would
    end, after enough of them, in every client refused)."""
    hub = hub_at_t0(max_clients=1)
    seen(hub)

    def broken(job_id: str) -> None:
        raise OSError("the history cannot be read")

    hub.history_interest.listen(broken)
    with pytest.raises(OSError, match="cannot be read"):
        hub.subscribe("j", history=True)
    assert hub.client_count == 0
    hub.subscribe("j")  # the one client allowed
