"""End to end: real files in tmp_path, a real server socket, real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets

from sidecar.core.contract import isoformat_utc
from sidecar.core.patch import apply_merge_patch
from sidecar.core.protocol import ENVELOPE_KEYS
from sidecar.server.close_pacer import ClosePolicy
from sidecar.server.keys import CLOSES, HUB, WATCHER
from tests.conftest import Sidecar, StartSidecar
from tests.helpers import (
    StreamClient,
    silent_client,
    state_of,
    wait_for,
    write_atomic,
    write_in_place,
)


def progress(job_id: str = "job1", **fields: Any) -> dict[str, Any]:
    return {"job_id": job_id, "status": "running", **fields}


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


async def test_stall_and_unstall(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    file = jobs_root / "job1" / "progress.json"
    write_atomic(file, progress(current_step=1))
    sidecar = await start_sidecar(stall_after=0.3)
    client = await sidecar.connect("job1")
    await client.next()
    await client.until(lambda s: s["stalled"] is True)
    assert client.messages[-1] == {**client.messages[-1], "type": "patch", "stalled": True}
    write_atomic(file, progress(current_step=2))
    await client.until(lambda s: s["stalled"] is False and s["current_step"] == 2)


async def test_completed_job_never_stalls(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    write_atomic(jobs_root / "job1" / "progress.json", {"status": "completed"})
    # A running job beside it, as old: once it is stalled, the stall rule has looked at both.
    write_atomic(jobs_root / "witness" / "progress.json", progress("witness"))
    sidecar = await start_sidecar(stall_after=0.1)
    hub = sidecar.app[HUB]
    await wait_for(lambda: hub.get("witness").stalled, what="the running job to stall")  # type: ignore[union-attr]
    status, body = await sidecar.get_json("/api/jobs/job1")
    assert status == 200
    assert body["stalled"] is False


async def test_nan_and_infinity_become_null(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    file = jobs_root / "job1" / "progress.json"
    write_atomic(file, '{"status": "running", "loss": 1.0, "eval_loss": 2.0}')
    sidecar = await start_sidecar()
    client = await sidecar.connect("job1")
    await client.next()
    write_atomic(
        file,
        '{"status": "running", "loss": NaN, "eval_loss": Infinity, "grad": -Infinity, "x": 1e999}',
    )
    raw = await client.ws.receive_str(timeout=5)
    assert "NaN" not in raw and "Infinity" not in raw
    patch = json.loads(raw)  # strict parsers accept it
    assert patch["loss"] is None and patch["eval_loss"] is None
    assert "grad" not in patch and "x" not in patch
    _, body = await sidecar.get_json("/api/jobs/job1")
    assert "loss" not in body and "eval_loss" not in body


async def test_torn_writes_never_reach_clients(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """A writer that truncates, pauses, then writes: clients see only whole documents."""
    file = jobs_root / "job1" / "progress.json"
    write_atomic(file, progress(current_step=0))
    sidecar = await start_sidecar()
    client = await sidecar.connect("job1")

    def torn_writes() -> None:
        # In a thread, as another process would: the event loop reads while the file is torn.
        for step in range(1, 21):
            text = json.dumps(progress(current_step=step, padding="x" * 2000)).encode()
            with open(file, "r+b") as f:
                f.truncate(0)
                f.flush()
                time.sleep(0.001)
                f.write(text[: len(text) // 2])
                f.flush()
                time.sleep(0.001)
                f.write(text[len(text) // 2 :])
            time.sleep(0.002)

    await asyncio.to_thread(torn_writes)
    watcher = sidecar.app[WATCHER]
    await client.until(lambda s: s.get("current_step") == 20)
    assert watcher.stats.rereads > 0  # the sidecar did catch the file torn, and read again
    assert all("read_error" not in m for m in client.messages)
    assert [m["current_step"] for m in client.messages if "current_step" in m] == sorted(
        m["current_step"] for m in client.messages if "current_step" in m
    )


async def test_invalid_file_keeps_last_good_state(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    file = jobs_root / "job1" / "progress.json"
    write_atomic(file, progress(current_step=3, loss=0.5))
    sidecar = await start_sidecar()
    client = await sidecar.connect("job1")
    await client.next()
    write_atomic(file, "[1, 2, 3]")
    state = await client.until(lambda s: "read_error" in s)
    assert state["read_error"] == "json is an array, not an object"
    assert state["current_step"] == 3 and state["loss"] == 0.5
    _, body = await sidecar.get_json("/api/jobs/job1")
    assert body["read_error"] == "json is an array, not an object"
    write_atomic(file, progress(current_step=4))
    state = await client.until(lambda s: s.get("current_step") == 4)
    assert "read_error" not in state


@pytest.mark.parametrize(
    ("job_id", "code", "reason"),
    [
        ("job%2F..%2Fetc", 4400, "invalid job id"),
        ("-job", 4400, "invalid job id"),
        (".hidden", 4400, "invalid job id"),
        ("a" * 129, 4400, "invalid job id"),
        ("a%00b", 4400, "invalid job id"),
        ("j%C3%A9", 4400, "invalid job id"),
        ("nosuchjob", 4404, "unknown job"),
    ],
)
async def test_refusals_close_after_handshake(
    jobs_root: Path, start_sidecar: StartSidecar, job_id: str, code: int, reason: str
) -> None:
    sidecar = await start_sidecar()
    client = await sidecar.connect(job_id)
    message = await client.ws.receive(timeout=5)
    assert message.type.name == "CLOSE"
    assert (message.data, message.extra) == (code, reason)


async def test_invalid_format_is_refused(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    write_atomic(jobs_root / "job1" / "progress.json", progress())
    sidecar = await start_sidecar()
    client = await sidecar.connect("job1", "format=xml")
    message = await client.ws.receive(timeout=5)
    assert (message.data, message.extra) == (4400, "invalid format: use patch or full")


async def test_capacity_per_job_and_in_all(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    for job in ("a", "b"):
        write_atomic(jobs_root / job / "progress.json", progress(job))
    sidecar = await start_sidecar(max_clients_per_job=2, max_clients=3)
    kept = [await sidecar.connect("a"), await sidecar.connect("a")]
    for client in kept:
        assert await client.next() is not None
    third = await sidecar.connect("a")
    message = await third.ws.receive(timeout=5)
    assert (message.data, message.extra) == (1013, "too many clients for this job")
    kept.append(await sidecar.connect("b"))
    assert await kept[-1].next() is not None
    fourth = await sidecar.connect("b")
    message = await fourth.ws.receive(timeout=5)
    assert (message.data, message.extra) == (1013, "too many clients")
    # A slot freed is a slot to take.
    await kept[0].ws.close()
    hub = sidecar.app[HUB]
    await wait_for(lambda: hub.client_count == 2, what="the closed client to be released")
    again = await sidecar.connect("a")
    assert await again.next() is not None


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


async def test_pending_job_directory_then_file(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    (jobs_root / "job1").mkdir()
    sidecar = await start_sidecar()
    client = await sidecar.connect("job1")
    snapshot = await client.next()
    assert snapshot is not None
    assert snapshot["status"] == "pending"
    write_atomic(jobs_root / "job1" / "progress.json", progress(current_step=1))
    await client.until(lambda s: s["status"] == "running" and s["current_step"] == 1)


async def test_new_job_appears_and_removed_job_closes_4404(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar()
    write_atomic(jobs_root / "late" / "progress.json", progress("late"))

    async def listed() -> bool:
        _, body = await sidecar.get_json("/api/jobs")
        return [j["job_id"] for j in body["jobs"]] == ["late"]

    await wait_for(listed, what="the new job to be listed")
    client = await sidecar.connect("late")
    await client.next()
    shutil.rmtree(jobs_root / "late")
    assert await client.closed() == 4404
    assert client.ws.close_code == 4404
    status, _ = await sidecar.get_json("/api/jobs/late")
    assert status == 404


async def test_root_created_late(tmp_path: Path, start_sidecar: StartSidecar) -> None:
    root = tmp_path / "not-yet"
    sidecar = await start_sidecar(root)
    _, health = await sidecar.get_json("/healthz")
    assert (health["root"], health["root_path"], health["root_present"]) == (
        "missing",
        str(root),
        False,
    )
    write_atomic(root / "job1" / "progress.json", progress(current_step=7))

    async def has_job() -> bool:
        status, _ = await sidecar.get_json("/api/jobs/job1")
        return status == 200

    await wait_for(has_job, what="the job under the late root")
    client = await sidecar.connect("job1")
    await client.until(lambda s: s.get("current_step") == 7)
    write_atomic(root / "job1" / "progress.json", progress(current_step=8))
    await client.until(lambda s: s.get("current_step") == 8)


async def test_root_deleted_and_recreated(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    write_atomic(jobs_root / "job1" / "progress.json", progress(current_step=1))
    sidecar = await start_sidecar()
    client = await sidecar.connect("job1")
    await client.next()
    shutil.rmtree(jobs_root)
    assert await client.closed() == 4404

    async def jobs() -> list[str]:
        _, body = await sidecar.get_json("/api/jobs")
        return [j["job_id"] for j in body["jobs"]]

    await wait_for(lambda: _equals(jobs(), []), what="jobs gone with the root")
    write_atomic(jobs_root / "job2" / "progress.json", progress("job2", current_step=1))
    await wait_for(lambda: _equals(jobs(), ["job2"]), what="the job under the new root")
    client = await sidecar.connect("job2")
    await client.next()
    write_atomic(jobs_root / "job2" / "progress.json", progress("job2", current_step=2))
    await client.until(lambda s: s.get("current_step") == 2)


async def _equals(value: Any, want: Any) -> bool:
    return bool(await value == want)


async def test_client_that_never_reads_is_dropped_and_hurts_nobody(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    file = jobs_root / "job1" / "progress.json"
    write_atomic(file, progress(current_step=0))
    sidecar = await start_sidecar(send_timeout=0.5)
    hub = sidecar.app[HUB]
    # A raw client: it completes the handshake, then never reads a byte.
    writer = await silent_client(sidecar.server.host, sidecar.server.port, "job1")
    good = await sidecar.connect("job1")
    await good.next()
    await wait_for(lambda: hub.client_count == 2, what="both clients subscribed")
    # Large states fill the socket buffers of the stuck client quickly.
    step = 0
    while hub.client_count == 2:
        step += 1
        assert step < 2000, "the stuck client was never dropped"
        write_atomic(file, progress(current_step=step, padding=str(step) * 100_000))
        await good.until(lambda s, step=step: s.get("current_step") == step, timeout=2)
    # The good client kept up with every state while the stuck one was being dropped.
    write_atomic(file, progress(current_step=step + 1))
    await good.until(lambda s: s.get("current_step") == step + 1)
    writer.close()


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


async def test_one_address_cannot_lock_a_job(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    """Ten idle connections from one address used to keep every other viewer off a job."""
    write_atomic(jobs_root / "a" / "progress.json", progress("a"))
    sidecar = await start_sidecar()  # defaults: 10 per job, 5 per address
    mine = [await sidecar.connect("a") for _ in range(5)]
    for client in mine:
        assert await client.next() is not None
    sixth = await sidecar.connect("a")
    message = await sixth.ws.receive(timeout=5)
    assert (message.data, message.extra) == (
        1013,
        "too many clients for this job from this address",
    )
    # Another address (127.0.0.2 is loopback too) still gets in.
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with (
        aiohttp.ClientSession(connector=connector) as other,
        other.ws_connect(sidecar.ws_url("a")) as ws,
    ):
        assert (await ws.receive_json(timeout=5))["type"] == "snapshot"


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


async def ended_with_close_waiting(
    jobs_root: Path, start_sidecar: StartSidecar
) -> tuple[Sidecar, StreamClient]:
    """A sidecar whose closes never get their turn by themselves, and a client of job1 that
    holds job1's final state, its close waiting in the pacer."""
    file = jobs_root / "job1" / "progress.json"
    write_atomic(file, progress(current_step=1))
    sidecar = await start_sidecar()
    pacer = sidecar.app[CLOSES]
    pacer.policy = ClosePolicy(quiet=60, max_wait=60)
    client = await sidecar.connect("job1")
    await client.next()
    write_atomic(file, {"job_id": "job1", "status": "completed", "current_step": 2})
    await client.until(lambda s: s["status"] == "completed")
    await wait_for(lambda: len(pacer) == 1, what="the close to wait its turn")
    return sidecar, client


async def test_a_job_removed_while_its_close_waits_still_ends_complete(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """The final state went out; the close that waits its turn (paced) stays "job complete"
    even if the job directory goes before that turn."""
    _sidecar, client = await ended_with_close_waiting(jobs_root, start_sidecar)
    shutil.rmtree(jobs_root / "job1")
    assert await client.closed() == 1000
    assert client.ws.close_code == 1000


async def test_a_job_rewritten_while_its_close_waits_sends_nothing_more(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """A client that has its job's final state gets no later state: its connection ends as
    complete, whatever the file says meanwhile."""
    _sidecar, client = await ended_with_close_waiting(jobs_root, start_sidecar)
    # The training server reuses the id.
    write_atomic(jobs_root / "job1" / "progress.json", progress(current_step=3))
    assert await client.closed() == 1000
    assert client.state is not None and client.state["status"] == "completed"


async def test_a_shutdown_closes_ended_jobs_as_complete(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """Closes that wait their turn at shutdown go out as 1000 (complete), not 1001."""
    sidecar, client = await ended_with_close_waiting(jobs_root, start_sidecar)
    await sidecar.app.shutdown()
    assert await client.closed() == 1000
