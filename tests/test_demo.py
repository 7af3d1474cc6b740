"""scripts/demo.py --once end to end: a real sidecar process and two real training runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).parents[1] / "scripts" / "demo.py"


def test_demo_once_trains_two_jobs_and_shows_one_live(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(DEMO),
            "--once",
            "--root",
            str(tmp_path),
            "--port",
            "0",
            "--steps",
            "40",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    live = [line for line in lines if "step " in line and "[" in line]
    steps = [int(line.split("step ")[1].split("/")[0]) for line in live]
    assert len(steps) >= 2 and steps == sorted(steps) and steps[-1] == 40
    assert any(
        line.endswith("completed: final loss " + line.split("final loss ")[-1]) for line in lines
    )
    assert "ws://" in result.stdout and "/api/jobs" in result.stdout
    jobs = sorted(p.name for p in tmp_path.iterdir())
    assert len(jobs) == 2
    states = {job: json.loads((tmp_path / job / "progress.json").read_text()) for job in jobs}
    failed = states[next(j for j in jobs if j.endswith("-fails"))]
    completed = states[next(j for j in jobs if j.endswith("-ok"))]
    assert (completed["status"], failed["status"]) == ("completed", "failed")
    assert "injected failure" in failed["error"]
