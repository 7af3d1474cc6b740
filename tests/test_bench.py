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
    crowds = report["crowds"]
    dashboards, viewers = crowds["dashboards"], crowds["viewers"]
    assert dashboards["snapshots_held"] == dashboards["dashboards"] == 100
    assert dashboards["lag_ms"]["n"] > 0 and dashboards["cpu_percent"]["gateway"] > 0
    assert {"gateway", "redis", "node-n0", "node-n1"} <= set(viewers["peak_rss_mb"])
    assert viewers["storm"]["snapshots_held"] == viewers["clients"] == 200
    assert viewers["latency_ms"]["n"] == viewers["deliveries_expected"] > 0
    assert viewers["final_lost"] == viewers["close_not_1000"] == 0
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


@pytest.fixture
def benchmarks(monkeypatch: pytest.MonkeyPatch) -> None:
    """scripts/ on sys.path, as bench.py runs: the benchmarks package importable."""
    monkeypatch.syspath_prepend(str(BENCH.parent))


@pytest.mark.usefixtures("benchmarks")
def test_dashboards_lag_joins_renames_with_what_a_probe_held() -> None:
    """A skipped step is as late as the later one that carried it; a rename never held is
    counted apart; renames outside the window are left out."""
    lag = importlib.import_module("benchmarks.dashboards.lag")
    written = {"a": {"1": 10.0, "2": 11.0, "3": 12.0, "4": 13.0}, "b": {"1": 10.5}}
    renames = lag.in_window(written, 10.9, 13.0)
    assert renames == {"a": {2: 11.0, 3: 12.0, 4: 13.0}, "b": {}}
    seen = [[10.01, "a", 1], [11.05, "b", 1], [12.1, "a", 3]]
    samples, unseen = lag.lag_ms(renames, seen)
    assert [round(ms) for ms in samples] == [1100, 100]  # step 2 held with 3, at 12.1
    assert unseen == 1  # step 4


@pytest.mark.usefixtures("benchmarks")
def test_dashboards_probes_parse_steps_and_spread_through_the_connections() -> None:
    load = importlib.import_module("benchmarks.dashboards.load")
    assert load.probe_indexes(1000, 4) == {0, 333, 666, 999}
    assert load.probe_indexes(3, 4) == {0, 1, 2}
    assert load.probe_indexes(0, 4) == set()
    messages = [
        (1.0, b'{"type":"snapshot","seq":1,"jobs":{"a":{"current_step":1},"b":{"status":"x"}}}'),
        (2.0, b'{"type":"patch","seq":2,"jobs":{"a":{"current_step":2},"b":null}}'),
    ]
    assert load.steps_seen(messages) == [[1.0, "a", 1], [2.0, "a", 2]]


@pytest.mark.usefixtures("benchmarks")
def test_gc_pauses_are_read_from_metrics_when_the_sidecar_has_them() -> None:
    server = importlib.import_module("benchmarks.dashboards.server")
    text = (
        "# TYPE sidecar_gc_pause_seconds_total counter\n"
        'sidecar_gc_pause_seconds_total{generation="0"} 0.25\n'
        'sidecar_gc_pause_seconds_total{generation="2"} 0.5\n'
        "sidecar_gc_pause_seconds_max 0.125\n"
        'sidecar_gc_collections_total{generation="1"} 7.0\n'
        'sidecar_gc_collections_total{generation="2"} 3.0\n'
    )
    assert server.parse_gc_pauses(text) == {"total": 0.75, "max": 0.125, "full": 3.0}
    assert server.parse_gc_pauses("sidecar_clients 3\n") is None
    before = {"total": 0.5, "max": 0.1, "full": 1.0}
    after = {"total": 0.75, "max": 0.125, "full": 3.0}
    assert server.gc_increase(before, after) == {
        "pause_seconds": 0.25,
        "full_collections": 2.0,
        "max_pause_seconds": 0.125,
    }
    assert server.gc_increase(None, after) is None


@pytest.mark.usefixtures("benchmarks")
def test_kernel_counters_are_paired_by_group_and_diffed() -> None:
    kernel = importlib.import_module("benchmarks.viewers.kernel")
    text = (
        "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n"
        "TcpExt: 1 20 21\n"
        "IpExt: InNoRoutes\n"
        "IpExt: 0\n"
    )
    before = kernel.parse_counters(text)
    assert before == {
        "TcpExt.SyncookiesSent": 1,
        "TcpExt.ListenOverflows": 20,
        "TcpExt.ListenDrops": 21,
        "IpExt.InNoRoutes": 0,
    }
    after = {**before, "TcpExt.ListenOverflows": 25, "TcpExt.ListenDrops": 26}
    assert kernel.counters_between(before, after) == {
        "TcpExt.ListenOverflows": 5,
        "TcpExt.ListenDrops": 5,
        "TcpExt.SyncookiesSent": 0,
    }
    assert "Tcp.PassiveOpens" in kernel.read_counters()  # this machine's own, on Linux


@pytest.mark.timeout(180)
def test_dashboards_scenario_reports_every_phase_and_target(tmp_path: Path) -> None:
    """100 jobs written at 1 Hz each, 10 then 100 picows dashboards: every one holds its
    snapshot, the probes see the steps, and every figure is there."""
    result = run_quick("dashboards", tmp_path, timeout=160)
    report = json.loads((tmp_path / "dashboards.json").read_text())
    assert report["commit"] and report["load"].startswith("picows")
    assert list(report["phases"]) == ["10 dashboards", "100 dashboards"]
    for name, phase in report["phases"].items():
        count = phase["dashboards"]
        assert phase["snapshots_held"] == count and phase["connect_seconds"] > 0, name
        assert phase["connect_errors"] == phase["dropped"] == 0, name
        assert phase["probes"] == min(count, 8), name  # 4 in each of 2 load processes
        # Each probe holds every job's step written in the 3-s window, at 1 Hz: 100 jobs.
        lag = phase["lag_ms"]
        assert lag["n"] >= phase["probes"] * 100 * 2 and lag["p50"] > 0, name
        assert phase["messages_per_second"]["min"] > 0, name
        assert phase["cpu_percent"]["sidecar"] > 0 and phase["peak_rss_mb"]["sidecar"] > 0, name
        assert 80 <= phase["writer"]["writes_per_second"] <= 120, name
    assert "lag p50 ms" in result.stdout
    for target in report["targets"]:
        assert f"target {target}:" in result.stdout


@pytest.mark.timeout(180)
def test_viewers_scenario_storms_then_delivers_every_step(tmp_path: Path) -> None:
    """10 jobs x 20 picows clients connecting at once: every client holds its snapshot, every
    rename of the window reaches every client, every job's end too."""
    result = run_quick("viewers", tmp_path, timeout=160)
    report = json.loads((tmp_path / "viewers.json").read_text())
    assert report["commit"] and report["clients"] == 200
    storm = report["storm"]
    assert storm["snapshots_held"] == 200 and storm["failures"] == 0
    assert storm["all_snapshots_seconds"] > 0 and storm["handshake_ms"]["n"] == 200
    assert storm["kernel"]["Tcp.PassiveOpens"] >= 200  # the namespace's: others may add
    assert report["latency_ms"]["n"] == report["deliveries_expected"] > 200 * 3
    assert report["final_lost"] == report["close_not_1000"] == 0
    assert report["peak_rss_mb"]["sidecar"] > 0
    assert "kernel during the storm" in result.stdout
    for target in report["targets"]:
        assert f"target {target}:" in result.stdout


@pytest.mark.usefixtures("benchmarks")
def test_the_servers_share_is_diffed_over_the_window() -> None:
    server_side = importlib.import_module("benchmarks.viewers.server_side")
    before = {"0.01": 5.0, "0.05": 9.0, "+Inf": 10.0, "count": 10.0}
    after = {"0.01": 15.0, "0.05": 29.0, "+Inf": 30.0, "count": 30.0}
    assert server_side.share_under(before, after) == {
        "sends": 20.0,
        "under_10_ms": 0.5,
        "under_50_ms": 1.0,
    }
    assert server_side.share_under(after, after) is None
    assert server_side.share_under(None, after) is None
