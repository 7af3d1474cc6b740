"""scripts/bench.py: the harness works (short runs; the figures themselves are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[1] / "scripts" / "bench.py"


def run_quick(scenario: str, out: Path) -> subprocess.CompletedProcess[str]:
    """``bench.py --SCENARIO --quick``, which must succeed."""
    result = subprocess.run(
        [sys.executable, str(BENCH), f"--{scenario}", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_latency_scenario_runs_and_reports_every_target(tmp_path: Path) -> None:
    result = run_quick("latency", tmp_path)
    assert "target sidecar p50 <= 3 ms:" in result.stdout
    report = json.loads((tmp_path / "latency.json").read_text())
    assert set(report["results_ms"]) == {"sidecar", "seed's 2-s loop", "REST poll 1 s"}
    assert report["results_ms"]["sidecar"]["n"] > 0
    assert (tmp_path / "latency-cdf.png").read_bytes().startswith(b"\x89PNG")


def test_no_scenario_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "choose scenarios" in result.stderr


def test_history_flood_scenario_runs_and_reports_every_target(tmp_path: Path) -> None:
    result = run_quick("history-flood", tmp_path)
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
