"""The WebSocket stream: a snapshot, then patches that merge to what the file says."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest
import websockets

from sidecar.core.contract import isoformat_utc
from sidecar.core.patch import apply_merge_patch
from sidecar.server.keys import HUB
from tests.conftest import StartSidecar
from tests.helpers import state_of, wait_for, write_atomic, write_in_place
from tests.sidecar.server.ws import progress


def expected(job_id: str, document: dict[str, Any], **derived: Any) -> dict[str, Any]:
    """The state a client should hold for a file holding ``document``."""
    state = {k: v for k, v in document.items() if v is not None}
    state.update(job_id=job_id, node=socket.gethostname(), complete=False, stalled=False)
    state.update(derived)
    return state


async def test_snapshot_then_patches_merge_to_file_content(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    file = jobs_root / "job1" / "progress.json"
    write_atomic(file, progress(current_step=0, loss=2.0, timestamp="2025-11-06T12:30:00Z"))
    sidecar = await start_sidecar()
    client = await sidecar.connect("job1")
    snapshot = await client.next()
    assert snapshot is not None
    assert snapshot["type"] == "snapshot"
    assert {"type", "job_id", "seq", "timestamp"} <= snapshot.keys()
    assert snapshot["timestamp"] == "2025-11-06T12:30:00Z"

    for step in range(1, 30):
        document = progress(
            current_step=step, loss=2.0 / step, timestamp=f"2025-11-06T12:30:{step:02d}Z"
        )
        if step == 10:
            document["eval_loss"] = 1.5
        write_atomic(file, document)
        await client.until(lambda s, step=step: s.get("current_step") == step)
        assert client.state == expected("job1", document)
    patches = client.messages[1:]
    assert patches
    assert all(m["type"] == "patch" for m in patches)
    assert all({"type", "job_id", "seq", "timestamp"} <= m.keys() for m in patches)
    # A patch holds what changed, not the whole state.
    assert all("status" not in m for m in patches)


async def test_in_place_writes_are_seen(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    file = jobs_root / "job1" / "progress.json"
    write_in_place(file, progress(current_step=0))
    sidecar = await start_sidecar()
    client = await sidecar.connect("job1")
    for step in range(1, 6):
        write_in_place(file, progress(current_step=step))
        await client.until(lambda s, step=step: s.get("current_step") == step)


async def test_timestamp_falls_back_to_file_mtime(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    file = jobs_root / "job1" / "progress.json"
    write_atomic(file, progress())
    sidecar = await start_sidecar()
    client = await sidecar.connect("job1")
    snapshot = await client.next()
    assert snapshot is not None
    assert snapshot["timestamp"] == isoformat_utc(file.stat().st_mtime)


async def test_format_full_sends_whole_states(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    file = jobs_root / "job1" / "progress.json"
    write_atomic(file, progress(progress=0.0, loss=3.0))
    sidecar = await start_sidecar()
    client = await sidecar.connect("job1", "format=full")
    write_atomic(file, progress(progress=50.0, loss=1.0))
    await client.until(lambda s: s.get("progress") == 50.0)
    write_atomic(file, {"job_id": "job1", "status": "completed", "final_loss": 0.5})
    assert await client.closed() == 1000
    assert all(m["type"] == "snapshot" for m in client.messages)
    last = client.messages[-1]
    assert state_of(last) == {
        "job_id": "job1",
        "node": socket.gethostname(),
        "status": "completed",
        "final_loss": 0.5,
        "complete": True,
        "stalled": False,
        "timestamp": last["timestamp"],
    }


async def test_terminal_state_is_sent_then_closed_with_1000(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    file = jobs_root / "job1" / "progress.json"
    write_atomic(file, progress(progress=10.0))
    sidecar = await start_sidecar()
    client = await sidecar.connect("job1")
    await client.next()
    write_atomic(
        file,
        {"job_id": "job1", "status": "failed", "error": "Training process terminated unexpectedly"},
    )
    assert await client.closed() == 1000
    assert client.state is not None
    assert client.state["complete"] is True
    assert client.state["error"] == "Training process terminated unexpectedly"
    assert client.messages[-1]["complete"] is True


@pytest.mark.parametrize(
    "status", ["completed", "failed", "cancelled", "canceled", "stopped", "error", "Completed"]
)
async def test_finished_job_gets_snapshot_then_close(
    jobs_root: Path, start_sidecar: StartSidecar, status: str
) -> None:
    write_atomic(jobs_root / "job1" / "progress.json", {"status": status, "final_loss": 0.1})
    sidecar = await start_sidecar()
    client = await sidecar.connect("job1")
    assert await client.closed() == 1000
    assert [m["type"] for m in client.messages] == ["snapshot"]
    assert client.messages[0]["complete"] is True


async def test_many_clients_on_one_job_see_the_same_states(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """Each client sees some of the written states, in the order written, ending with the last;
    a version's name (epoch, seq) stands for the same state on every client."""
    written = [progress(current_step=step) for step in range(11)]
    written.append({"job_id": "job1", "status": "completed", "final_loss": 0.1})
    bodies = [expected("job1", d, complete=d["status"] == "completed") for d in written]
    file = jobs_root / "job1" / "progress.json"
    write_atomic(file, written[0])
    sidecar = await start_sidecar(max_clients_per_job=50, max_clients_per_address=50)
    clients = [await sidecar.connect("job1") for _ in range(50)]
    for document in written[1:]:
        await asyncio.sleep(0.02)  # a trainer's pace: clients read between two writes
        write_atomic(file, document)
    codes = await asyncio.gather(*(c.closed() for c in clients))
    assert codes == [1000] * 50
    named: dict[tuple[str, int], dict[str, Any]] = {}
    for client in clients:
        seen = states_seen(client.messages)
        assert client.messages[0]["type"] == "snapshot"
        # Which written document each state shows: strictly later ones, ending with the last.
        shown = [bodies.index({k: v for k, v in s.items() if k != "timestamp"}) for _, s in seen]
        assert shown == sorted(set(shown)) and shown[-1] == len(written) - 1, shown
        for name, state in seen:
            assert named.setdefault(name, state) == state, name
    assert len({epoch for epoch, _seq in named}) == 1  # one sidecar process: one epoch
    assert len(named) > 2  # the writes were seen one by one, not only the first and the last
    await wait_for(lambda: sidecar.app[HUB].client_count == 0, what="all clients released")


def states_seen(messages: list[dict[str, Any]]) -> list[tuple[tuple[str, int], dict[str, Any]]]:
    """Each version a client was sent, as its name and the state merged up to it."""
    seen: list[tuple[tuple[str, int], dict[str, Any]]] = []
    state: dict[str, Any] = {}
    for message in messages:
        if message["type"] == "snapshot":
            state = state_of(message)
        elif message["type"] == "patch":
            state = apply_merge_patch(state, state_of(message))
        else:
            continue
        seen.append(((message["epoch"], message["seq"]), state))
    return seen


async def test_client_of_another_library_gets_snapshot_and_patches(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """The protocol is plain WebSocket + JSON: the websockets library follows it too."""
    file = jobs_root / "job1" / "progress.json"
    write_atomic(file, progress(current_step=0, loss=1.0))
    sidecar = await start_sidecar()
    async with websockets.connect(sidecar.ws_url("job1")) as ws:
        snapshot = json.loads(await ws.recv())
        assert snapshot["type"] == "snapshot"
        state = state_of(snapshot)
        for step in (1, 2, 3):
            write_atomic(file, progress(current_step=step, loss=1.0 / (step + 1)))
            while state.get("current_step") != step:
                message = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert message["type"] == "patch"
                state = apply_merge_patch(state, state_of(message))
        assert state == expected(
            "job1", progress(current_step=3, loss=0.25), timestamp=state["timestamp"]
        )
        write_atomic(file, {"job_id": "job1", "status": "completed"})
        final = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert final["complete"] is True
        with pytest.raises(websockets.ConnectionClosedOK):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1000


async def test_a_client_that_reads_late_merges_to_exactly_the_current_state(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """Keys removed, nested objects changed and lists replaced across changes a client reads
    only later: what it merges is the current state. (A client whose connection backs up gets
    one patch for several states instead: test_metrics' test_a_slow_client_skips_to_the_latest_
    state.)"""
    file = jobs_root / "job1" / "progress.json"
    write_atomic(file, progress(a=1, b={"x": 1, "y": 2}, c=[1]))
    sidecar = await start_sidecar()
    client = await sidecar.connect("job1")
    await client.next()
    hub = sidecar.app[HUB]
    base = hub.version("job1")
    assert base is not None
    # Three states in a row while the client is not reading.
    write_atomic(file, progress(a=2, b={"x": 1}, c=[1, 2]))
    await wait_for(lambda: hub.version("job1").seq > base.seq, what="the first change")  # type: ignore[union-attr]
    write_atomic(file, progress(a=3, b={"x": 5}, d="new"))
    await wait_for(lambda: hub.version("job1").body.get("d") == "new", what="the second change")  # type: ignore[union-attr]
    final = await client.until(lambda s: s.get("d") == "new")
    assert final == expected(
        "job1", progress(a=3, b={"x": 5}, d="new"), timestamp=final["timestamp"]
    )
    assert [m["type"] for m in client.messages] == ["snapshot"] + ["patch"] * (
        len(client.messages) - 1
    )
    assert 2 <= len(client.messages) <= 3  # the snapshot, then one patch per state at most
