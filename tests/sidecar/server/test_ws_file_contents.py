"""What WebSocket clients see of stalls, non-finite numbers, torn writes and invalid files."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from sidecar.server.keys import HUB, WATCHER
from tests.conftest import StartSidecar
from tests.helpers import wait_for, write_atomic
from tests.sidecar.server.ws import progress


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
