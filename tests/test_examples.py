"""examples/: each runs as a user would run it, and does what the README says."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sidecar.clients.follow import follow_job
from tests.conftest import StartSidecar

EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.mark.timeout(180)
async def test_hf_trainer_example_trains_with_progress_callback(
    start_sidecar: StartSidecar, jobs_root: Path
) -> None:
    """examples/hf_trainer.py trains the tiny model with ProgressCallback: progress.json ends
    completed at the last step, metrics.jsonl has the logged losses, and a sidecar streams it live."""
    (jobs_root / "example").mkdir()  # a pending job, so it can be followed before it starts
    sidecar = await start_sidecar()
    example = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / "hf_trainer.py"),
        "--jobs-root", str(jobs_root), "--job-id", "example", "--steps", "12",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    states: list[dict[str, Any]] = []

    async def follow() -> None:
        async for state in follow_job(sidecar.url("/"), "example"):
            states.append(state)

    following = asyncio.create_task(follow())
    try:
        output, _ = await asyncio.wait_for(example.communicate(), 150)
        assert example.returncode == 0, output.decode()
        await asyncio.wait_for(following, 10)  # the stream ends with the job
    finally:
        following.cancel()

    progress = json.loads((jobs_root / "example" / "progress.json").read_text())
    assert progress["status"] == "completed"
    assert progress["current_step"] == progress["total_steps"] == 12
    assert progress["progress"] == 100
    history = [
        json.loads(line)
        for line in (jobs_root / "example" / "metrics.jsonl").read_text().splitlines()
    ]
    assert history and all(0 < entry["step"] <= 12 for entry in history)
    assert any(isinstance(entry.get("loss"), float) for entry in history)

    assert [s["status"] for s in states if "status" in s][-1] == "completed"
    assert any(s.get("status") == "running" for s in states)
    assert states[-1]["complete"] is True


@pytest.mark.timeout(120)
def test_hf_trainer_example_is_cancelled_by_sigterm(tmp_path: Path) -> None:
    """guard(signals=True) in a script of one's own: SIGTERM writes cancelled, and the example
    says so in one line and exits 143, without a traceback."""
    example = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "hf_trainer.py"), "--jobs-root", str(tmp_path),
         "--job-id", "example", "--steps", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    progress = tmp_path / "example" / "progress.json"
    try:
        deadline = time.monotonic() + 90
        while not (progress.exists() and json.loads(progress.read_text())["current_step"] > 0):
            assert example.poll() is None and time.monotonic() < deadline, "no step was taken"
            time.sleep(0.05)
        example.send_signal(signal.SIGTERM)
        output, _ = example.communicate(timeout=30)
    finally:
        example.kill()
        example.wait()
    assert example.returncode == 143, output
    assert "cancelled by SIGTERM" in output and "Traceback" not in output
    assert json.loads(progress.read_text())["status"] == "cancelled"
