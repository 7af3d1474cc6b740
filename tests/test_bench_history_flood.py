"""scripts/bench.py --history-flood: the scenario runs (short; its figures are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[1] / "scripts" / "bench.py"


def test_history_flood_scenario_runs_and_reports_every_target(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--history-flood", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "history_flood.json").read_text())
    assert set(report["other_job_delay_ms"]) == {
        "baseline",
        "append, unread",
        "append",
        "first look",
    }
    assert all(figures["n"] > 0 for figures in report["other_job_delay_ms"].values())
    assert len(report["targets"]) == 3
    for target in report["targets"]:
        assert f"target {target}:" in result.stdout
