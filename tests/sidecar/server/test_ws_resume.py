"""Resuming a WebSocket stream with ``since``: one patch to the current state, or a snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.core.patch import apply_merge_patch
from sidecar.core.protocol import ENVELOPE_KEYS
from sidecar.server.keys import HUB
from tests.conftest import StartSidecar
from tests.helpers import state_of, wait_for, write_atomic
from tests.sidecar.server.ws import progress


async def test_a_client_resumes_with_since_and_gets_one_patch_to_the_current_state(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    file = jobs_root / "job1" / "progress.json"
    write_atomic(file, progress(current_step=1, loss=2.0))
    sidecar = await start_sidecar()
    first = await sidecar.connect("job1")
    snapshot = await first.next()
    assert snapshot is not None and snapshot["type"] == "snapshot"
    write_atomic(file, progress(current_step=2, loss=1.5))
    patch = await first.next()
    assert patch is not None and patch["type"] == "patch"
    applied = first.state
    await first.ws.close()
    write_atomic(file, progress(current_step=3, loss=1.0, note="new"))
    await wait_for(lambda: sidecar.app[HUB].get("job1").document.get("note") == "new")  # type: ignore[union-attr]

    again = await sidecar.connect("job1", f"since={patch['epoch']}:{patch['seq']}")
    resumed = await again.next()
    assert resumed is not None and resumed["type"] == "patch" and resumed["resumed"] is True
    assert resumed["epoch"] == patch["epoch"] and resumed["seq"] > patch["seq"]
    # The patch turns what the client held into the current state: nothing else is sent.
    assert {k: v for k, v in resumed.items() if k not in ENVELOPE_KEYS} == {
        "job_id": "job1",
        "current_step": 3,
        "loss": 1.0,
        "note": "new",
        "timestamp": resumed["timestamp"],
    }
    assert applied is not None
    current = await sidecar.get_json("/api/jobs/job1")
    assert apply_merge_patch(applied, state_of(resumed)) == state_of(current[1])


async def test_resuming_from_the_current_version_sends_an_empty_resumed_patch(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    write_atomic(jobs_root / "job1" / "progress.json", progress(current_step=1))
    sidecar = await start_sidecar()
    first = await sidecar.connect("job1")
    snapshot = await first.next()
    assert snapshot is not None
    again = await sidecar.connect("job1", f"since={snapshot['epoch']}:{snapshot['seq']}")
    resumed = await again.next()
    assert resumed is not None and resumed["resumed"] is True
    assert set(resumed) == {"type", "job_id", "epoch", "seq", "timestamp", "resumed"}


@pytest.mark.parametrize("since", ["other:1", "{epoch}:999999"])
async def test_resuming_from_an_unknown_version_gets_a_snapshot(
    jobs_root: Path, start_sidecar: StartSidecar, since: str
) -> None:
    write_atomic(jobs_root / "job1" / "progress.json", progress(current_step=1))
    sidecar = await start_sidecar()
    epoch = sidecar.app[HUB].epoch
    client = await sidecar.connect("job1", f"since={since.format(epoch=epoch)}")
    first = await client.next()
    assert first is not None and first["type"] == "snapshot" and "resumed" not in first


@pytest.mark.parametrize("since", ["", "abc", "e:", ":1", "e:-1", "e:1.5", "e/x:1", "e:\uff11"])
async def test_a_malformed_since_closes_with_4400(
    jobs_root: Path, start_sidecar: StartSidecar, since: str
) -> None:
    write_atomic(jobs_root / "job1" / "progress.json", progress(current_step=1))
    sidecar = await start_sidecar()
    client = await sidecar.connect("job1", f"since={since}")
    assert await client.closed() == 4400
    assert client.ws.close_code == 4400
