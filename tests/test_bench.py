"""scripts/bench.py: the harness works (short runs; the figures themselves are not checked)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.redis_server import require_redis_server

BENCH = Path(__file__).parents[1] / "scripts" / "bench.py"


def run_quick(
    scenario: str, out: Path, *, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``bench.py --SCENARIO --quick``, which must succeed."""
    result = subprocess.run(
        [sys.executable, str(BENCH), f"--{scenario}", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
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


# Burns a third of a second of CPU, then prints what the kernel counted for it (getrusage) and
# waits, idle, for stdin to close.
BURN = """
import resource, sys, time
while time.process_time() < 0.3:
    pass
used = resource.getrusage(resource.RUSAGE_SELF)
print(used.ru_utime + used.ru_stime, flush=True)
sys.stdin.read()
"""


def test_cpu_seconds_of_another_process_is_its_own_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every scenario's CPU figure (``CpuMeter``) reads another process's CPU time from
    /proc/PID/stat: it is what the kernel tells that process of itself (getrusage)."""
    monkeypatch.syspath_prepend(str(BENCH.parent))  # as bench.py runs: scripts/ on sys.path
    common = importlib.import_module("benchmarks.common")
    child = subprocess.Popen(
        [sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        own = float(child.stdout.readline())
        measured = common.cpu_seconds(child.pid)
    finally:
        child.communicate(timeout=10)
    assert own >= 0.3 and abs(measured - own) < 0.05, (measured, own)


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


@pytest.mark.timeout(240)
def test_cluster_scenario_runs_and_reports_every_figure(tmp_path: Path) -> None:
    """A tiny cluster (Redis, 2 nodes, gateways, 20 clients): every figure there, and sane."""
    require_redis_server()
    result = subprocess.run(
        [sys.executable, str(BENCH), "--cluster", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=220,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "cluster.json").read_text())
    assert report["commit"] and report["date"] and report["cores"] >= 1
    assert report["settings"]["nodes"] == 2
    for phase in report["latency"]["rates"].values():
        assert set(phase["results_ms"]) == {"node A (direct)", "node B (replica)", "gateway"}
        assert all(f["n"] > 0 and f["p50"] > 0 for f in phase["results_ms"].values())
        assert phase["added_per_write_ms"]["n"] > 0
        assert set(phase["added_ms"]) == {"p50", "p99"}
    scale = report["scale"]
    assert scale["latency_ms"]["n"] == scale["deliveries_expected"] > 0
    assert scale["writes_lost"] == scale["final_states_lost"] == scale["client_errors"] == 0
    assert scale["states_backwards"] == scale["seq_errors"] == 0
    cpu = scale["cpu_percent"]
    assert {"gateway", "redis", "node-n0", "node-n1", "load clients", "writer"} <= set(cpu)
    # Shares of this machine's cores, measured (/proc/PID/stat) from processes that worked.
    assert all(0 <= share <= 100 * report["cores"] for share in cpu.values()), cpu
    assert sum(cpu.values()) > 0, cpu
    assert scale["redis"]["used_memory_mb"] > scale["redis_empty"]["used_memory_mb"] > 0
    assert scale["redis"]["stream_length"] > 0
    assert scale["redis_commands_per_change"]["xadd"]["calls_per_change"] > 0
    recovery = report["recovery"]
    assert recovery["redis_refilled_seconds"] is not None
    assert recovery["new_gateway_all_final_seconds"] > 0
    assert recovery["clients_not_final"] == recovery["clients_backwards"] == 0
    throughput = report["redis_throughput"]
    assert throughput["message_bytes"] > 100
    assert all(v["changes_per_second"] > 0 for v in throughput["variants"].values())
    # Redis taking changes as fast as the publishers send them is busy.
    assert all(v["redis_cpu_percent"] > 0 for v in throughput["variants"].values())
    assert throughput["at_scale"]["redis_cpu_percent"] == cpu["redis"]
    for target in report["targets"]:
        assert f"target {target}:" in result.stdout


def test_intervals_scenario_runs_both_settings_at_each_interval(tmp_path: Path) -> None:
    result = run_quick("intervals", tmp_path)
    report = json.loads((tmp_path / "intervals.json").read_text())
    assert [r["interval_s"] for r in report["results"]] == [0.05, 0.5]
    for interval in report["results"]:
        for setting in ("warm (default)", "no warm step"):
            assert interval[setting]["latency_ms"]["n"] > 0
            assert interval[setting]["cpu_percent_median"] > 0
    assert report["commit"] and report["cores"]
    for target in report["targets"]:
        assert f"target {target}:" in result.stdout


@pytest.mark.timeout(240)
def test_fanout_scenario_reports_both_shapes_and_the_terminal_tick(tmp_path: Path) -> None:
    """picows clients and a writer of their own: every phase delivers, and its terminal tick
    is counted apart from the ordinary ones."""
    result = run_quick("fanout", tmp_path, timeout=220)
    report = json.loads((tmp_path / "fanout.json").read_text())
    assert report["commit"] and report["load"].startswith("picows")
    phases = report["phases"]
    assert {p["shape"] for p in phases.values()} == {"independent", "lockstep"}
    for name, phase in phases.items():
        ticks, clients = phase["ticks"], report["clients"]
        assert phase["terminal_tick_ms"]["n"] == clients, name
        assert phase["ordinary_tick_ms"]["n"] == clients * (ticks - 1), name
        assert phase["final_lost"] == phase["errors"] == phase["close_not_1000"] == 0, name
        if phase["server"] == "sidecar":
            assert phase["server_event_to_send"]["sends"] >= clients, name  # the finals at least
    assert "terminal p99" in result.stdout and "close after final" in result.stdout
    for name, phase in phases.items():
        if phase["server"] == "sidecar":
            assert phase["close_after_final_ms"]["n"] == report["clients"], name
    for target in report["targets"]:
        assert f"target {target}:" in result.stdout


def test_memory_scenario_runs_and_reports_every_figure(tmp_path: Path) -> None:
    """Both phases run against a real sidecar; RSS and the budgets' gauges are reported."""
    result = run_quick("memory", tmp_path)
    report = json.loads((tmp_path / "memory.json").read_text())
    assert report["commit"] and report["date"] and report["cores"] >= 1
    for phase in ("rewrites", "histories"):
        rss = report[phase]["rss_mb"]
        assert rss["before"] > 0 and rss["peak"] >= rss["before"]
    assert report["rewrites"]["resume_bytes_held"] > 0
    assert report["histories"]["history_bytes_held"]["released"] == 0
    assert len(report["targets"]) == 3
    for target in report["targets"]:
        assert f"target {target}:" in result.stdout


def test_many_jobs_scenario_runs_and_reports_every_target(tmp_path: Path) -> None:
    """2,000 jobs (quick): start-up, rest, and the stall another client sees during each big
    listing and snapshot; every listing, page and snapshot holds every job."""
    result = run_quick("many-jobs", tmp_path)
    report = json.loads((tmp_path / "many_jobs.json").read_text())
    assert report["commit"] and report["cores"] and report["jobs"] == 2000
    assert report["ready_seconds"] > 0 and report["rest"]["rss_mb"] > 0
    assert set(report["stall_ms"]) == {
        "quiet",
        "GET /api/jobs",
        "GET /api/jobs?limit=1000, every page",
        "1 dashboard on /ws/jobs",
        "3 dashboards at once",
    }
    assert report["stall_ms"]["quiet"]["probe_requests"] > 0
    assert report["targets"]["every job listed, every page, every snapshot"] == "ok"
    for target in report["targets"]:
        assert f"target {target}:" in result.stdout
