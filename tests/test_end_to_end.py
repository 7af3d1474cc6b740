"""A real tiny training run, the sidecar, and a WebSocket client with history=1."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sidecar.server.keys import HUB
from tests.conftest import StartSidecar
from tests.helpers import wait_for

# Fields of the seed's message that change during any run on any machine.
CHANGING = {
    "status", "progress", "current_epoch", "current_step", "loss", "eval_loss", "learning_rate",
    "samples_per_second", "eta_seconds", "timestamp",
}  # fmt: skip
PRESENT = {"job_id", "total_epochs", "total_steps", "pid", "hostname", "started_at"}


async def test_training_run_streams_to_a_client(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar()
    trainer = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "trainer", "--jobs-root", str(jobs_root), "--job-id", "e2e",
        "--max-steps", "120", "--eval-steps", "20", "--progress-interval", "0.05",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        hub = sidecar.app[HUB]
        await wait_for(lambda: "e2e" in hub, timeout=60, what="the job to appear")
        client = await sidecar.connect("e2e", "history=1")
        assert await client.closed(timeout=120) == 1000
        assert await asyncio.wait_for(trainer.wait(), 30) == 0
    finally:
        if trainer.returncode is None:
            trainer.kill()
            await trainer.wait()
    states = [m for m in client.messages if m["type"] != "log"]
    assert states[0]["type"] == "snapshot" and states[0]["status"] == "running"
    changed = set().union(*(m.keys() for m in states[1:] if m["type"] == "patch"))
    assert changed >= CHANGING, CHANGING - changed
    final = client.state
    assert final is not None
    assert final.keys() >= PRESENT
    assert (final["status"], final["complete"], final["progress"], final["current_step"]) == (
        "completed",
        True,
        100.0,
        120,
    )
    assert isinstance(final["final_loss"], float)
    assert states[-1]["complete"] is True and "final_loss" in states[-1]
    # GPU fields are null on a CPU-only machine, so they are absent from the state.
    assert client.history is not None
    losses = [e["loss"] for e in client.history if "loss" in e]
    assert len(losses) >= 10 and losses[-1] < losses[0]
    assert [e["step"] for e in client.history if "eval_loss" in e] == [20, 40, 60, 80, 100, 120]
