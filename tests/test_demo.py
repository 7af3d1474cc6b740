"""scripts/demo.py end to end: a real sidecar process, a job written to disk, a live client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).parents[1] / "scripts" / "demo.py"


def test_demo_streams_a_job_to_completion(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(DEMO),
            "--root",
            str(tmp_path),
            "--port",
            "0",
            "--steps",
            "12",
            "--interval",
            "0.05",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    messages = [line.split()[0] for line in lines if "seq=" in line]
    assert messages[0] == "snapshot"
    assert messages.count("patch") >= 12
    assert "status=pending" in next(line for line in lines if "seq=" in line)
    assert any("current_step=12" in line and "ms after the write" in line for line in lines)
    assert any("status=completed" in line and "complete=True" in line for line in lines)
    assert "closed the stream with code 1000" in result.stdout
    [job_dir] = tmp_path.iterdir()
    assert '"status": "completed"' in (job_dir / "progress.json").read_text()
