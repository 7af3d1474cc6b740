"""The hub's part in a cluster and in resuming: version names, other nodes' jobs, lost nodes."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from sidecar.core.events import HistoryLines, JobGone, JobPublished, JobSeen, NodeBack, NodeLost
from sidecar.core.hub import JobHub
from sidecar.core.kept_versions import RESUME_DEPTH
from sidecar.core.patch import apply_merge_patch
from sidecar.core.protocol import ENVELOPE_KEYS
from sidecar.core.state import JobState

T0 = 1_762_432_200.0


def seen(job_id: str = "j", origin: str = "here", **fields: Any) -> JobSeen:
    return JobSeen(origin, job_id, {"status": "running", **fields}, T0)


def published(
    seq: int,
    job_id: str = "j",
    origin: str = "far",
    epoch: str = "e1",
    *,
    ordered: bool = False,
    **fields: Any,
) -> JobPublished:
    document = {"status": "running", **fields}
    state = JobState(job_id, document, T0, has_file=True, node=origin)
    return JobPublished(origin, job_id, state, epoch, seq, ordered=ordered)


def body_of(hub: JobHub, job_id: str = "j") -> dict[str, Any]:
    version = hub.version(job_id)
    assert version is not None
    return version.body


def message(frame: bytes) -> dict[str, Any]:
    decoded = json.loads(frame)
    assert isinstance(decoded, dict)
    return decoded


def test_own_versions_are_named_by_this_hubs_epoch_and_carry_the_node() -> None:
    hub = JobHub(node="here", epoch="abc")
    hub.apply(seen(step=1))
    version = hub.version("j")
    assert version is not None and version.epoch == "abc"
    assert message(version.snapshot_frame())["epoch"] == "abc"
    assert body_of(hub)["node"] == "here"
    assert hub.get("j") is not None and hub.get("j").summary()["node"] == "here"  # type: ignore[union-attr]


def test_a_client_resumes_from_a_version_still_kept() -> None:
    hub = JobHub(node="here")
    hub.apply(seen(step=1, loss=2.0))
    first = hub.version("j")
    assert first is not None
    hub.apply(seen(step=2, loss=1.5))
    hub.apply(seen(step=3))
    subscription = hub.subscribe("j", since=first.id)
    assert subscription.resume_base == first.body
    current = hub.version("j")
    assert current is not None
    frame = message(current.resume_frame(first.body))
    assert frame["type"] == "patch" and frame["resumed"] is True
    assert (frame["epoch"], frame["seq"]) == current.id
    patch = {k: v for k, v in frame.items() if k not in ENVELOPE_KEYS}
    assert apply_merge_patch(first.body, patch) == current.body


def test_resume_from_an_unknown_or_forgotten_version_gives_none() -> None:
    hub = JobHub(node="here")
    hub.apply(seen(step=0))
    first = hub.version("j")
    assert first is not None
    for step in range(1, RESUME_DEPTH + 1):
        hub.apply(seen(step=step))
    assert hub.resume_base("j", first.id) is None  # the 101st version pushed it out
    assert hub.resume_base("j", ("other-epoch", first.seq)) is None
    assert hub.subscribe("j", since=("nope", 1)).resume_base is None
    latest = hub.version("j")
    assert latest is not None and hub.resume_base("j", latest.id) == latest.body


def test_another_nodes_job_is_served_under_its_owners_version_name() -> None:
    hub = JobHub(node="here", epoch="mine")
    hub.apply(published(7, step=1))
    version = hub.version("j")
    assert version is not None and version.id == ("e1", 7)
    assert body_of(hub)["node"] == "far"
    hub.apply(published(9, step=2))
    assert hub.version("j").id == ("e1", 9)  # type: ignore[union-attr]


def test_an_older_version_of_the_same_epoch_never_goes_back() -> None:
    hub = JobHub(node="here")
    hub.apply(published(9, step=2))
    hub.apply(published(7, step=1))  # a replay: the bootstrap read was newer
    hub.apply(published(9, step=2))  # republished after a Redis restart
    version = hub.version("j")
    assert version is not None and version.id == ("e1", 9) and version.body["step"] == 2
    assert version.index == 0  # no version was made by either


def test_in_the_owners_stream_order_a_forged_seq_pins_nothing() -> None:
    hub = JobHub(node="here")
    hub.apply(published(5, ordered=True, step=1))
    hub.apply(published(2**62, ordered=True, step=999))  # forged in the owner's stream
    hub.apply(published(6, ordered=True, step=2))  # the owner's next real entry replaces it
    version = hub.version("j")
    assert version is not None and version.id == ("e1", 6) and version.body["step"] == 2
    hub.apply(published(6, ordered=True, step=2))  # the same version read again: nothing new
    hub.apply(published(3, step=0))  # read back out of order: older, ignored
    assert hub.version("j") is version


def test_a_new_epoch_of_the_owner_is_taken_even_with_the_same_body() -> None:
    """A restarted node renumbers: replicas take its names, so every replica agrees."""
    hub = JobHub(node="here")
    hub.apply(published(9, step=2))
    hub.apply(published(1, epoch="e2", step=2))
    assert hub.version("j").id == ("e2", 1)  # type: ignore[union-attr]


def test_the_stall_rule_is_the_owners_not_a_replicas() -> None:
    now = [T0]
    hub = JobHub(node="here", stall_after=60, clock=lambda: now[0])
    hub.apply(published(1))
    hub.apply(seen("mine"))
    now[0] = T0 + 3600
    assert hub.sweep() == 1  # only this node's own job
    assert hub.get("mine").stalled  # type: ignore[union-attr]
    assert not hub.get("j").stalled  # type: ignore[union-attr]


def test_a_lost_node_stalls_its_running_jobs_and_its_return_restores_them() -> None:
    hub = JobHub(node="here")
    hub.apply(published(5, step=3))
    hub.apply(published(2, job_id="done", status="completed"))
    hub.apply(published(1, job_id="other", origin="near"))
    subscription = hub.subscribe("j")
    hub.apply(NodeLost("far"))
    lost = hub.version("j")
    assert lost is not None and lost.id == ("e1-lost", 5)
    assert (lost.body["stalled"], lost.body["stall_reason"]) == (True, "node lost")
    assert lost.body["step"] == 3
    assert hub.version("done").body["stalled"] is False  # type: ignore[union-attr]
    assert hub.version("other").body["stalled"] is False  # type: ignore[union-attr]
    assert hub.get("j").summary()["stall_reason"] == "node lost"  # type: ignore[union-attr]
    assert subscription.version is lost
    hub.apply(NodeLost("far"))  # said twice: nothing more
    assert hub.version("j") is lost
    hub.apply(NodeBack("far"))
    back = hub.version("j")
    assert back is not None and back.id == ("e1", 5) and back.body["stalled"] is False
    assert "stall_reason" not in back.body


def test_a_job_published_while_its_node_is_lost_is_shown_lost() -> None:
    hub = JobHub(node="here")
    hub.apply(NodeLost("far"))
    hub.apply(published(3))
    assert hub.version("j").id == ("e1-lost", 3)  # type: ignore[union-attr]
    assert hub.lost_nodes == {"far"}


def test_the_same_job_id_on_two_nodes_warns_once_and_keeps_the_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = JobHub(node="here")
    hub.apply(seen(step=1))
    with caplog.at_level(logging.WARNING):
        hub.apply(published(1, step=99))
        hub.apply(published(2, step=100))
        hub.apply(JobGone("far", "j"))
        hub.apply(HistoryLines("far", "j", (b"{}",)))
    assert body_of(hub)["step"] == 1 and body_of(hub)["node"] == "here"
    warnings = [r for r in caplog.records if "node far has a job of that id too" in r.message]
    assert len(warnings) == 1
    hub.apply(JobGone("here", "j"))
    hub.apply(published(3, step=5))  # the id is free again: the other node's job is served
    assert body_of(hub)["node"] == "far"


def test_this_nodes_own_job_echoed_by_the_bus_is_ignored() -> None:
    hub = JobHub(node="here")
    hub.apply(seen(step=1))
    hub.apply(published(50, origin="here", step=0))
    assert body_of(hub)["step"] == 1


def test_a_publisher_watch_sees_changes_and_history_but_is_no_client() -> None:
    hub = JobHub(node="here", max_clients=1)
    watch = hub.watch_all()
    hub.apply(seen(step=1))
    hub.histories.use("j")
    hub.apply(HistoryLines("here", "j", (b'{"loss":1}',), reset=True))
    assert watch.changed == {"j"} and watch.history_changed == {"j"}
    assert hub.client_count == 0
    hub.subscribe("j")  # the one client allowed still gets in
    hub.unwatch_jobs(watch)
    assert hub.client_count == 1


def test_a_nodes_own_job_takes_its_id_back_from_another_nodes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = JobHub(node="here")
    hub.apply(published(4, step=40))
    subscription = hub.subscribe("j")
    with caplog.at_level(logging.WARNING):
        hub.apply(seen(step=1))
        hub.apply(published(5, step=50))  # the other node's goes on: not served here
    assert body_of(hub)["node"] == "here" and body_of(hub)["step"] == 1
    assert subscription.version is hub.version("j")
    warnings = [r.message for r in caplog.records if "has a job of that id too" in r.message]
    assert warnings == [
        "job j: node far has a job of that id too; serving node here's only (job ids must be "
        "unique across the cluster)"
    ]
