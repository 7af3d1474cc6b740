"""The dashboards scenario: 1,000 jobs rewritten once a second each, and 10, 100 then 1,000
dashboards on ``/ws/jobs``, each count on a fresh sidecar; the targets and the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import table, verdict
from benchmarks.dashboards.measure import LOADS, PROBES, measure_dashboards
from benchmarks.dashboards.server import (
    LIMITS,
    disk_tmp,
    log_problems,
    start_logged_sidecar,
    wait_listed,
)
from benchmarks.dashboards.writer import make_jobs

JOBS = 1000
DASHBOARDS = (10, 100, 1000)


async def run(
    *,
    jobs: int = JOBS,
    dashboards: tuple[int, ...] = DASHBOARDS,
    seconds: float = 30,
    loads: int = LOADS,
) -> dict[str, Any]:
    """Each dashboard count in turn, on a sidecar of its own over the same jobs root."""
    phases: dict[str, Any] = {}
    with disk_tmp() as name:
        tmp = Path(name)
        root = tmp / "jobs"
        job_list = [(root, f"job{j:04d}") for j in range(jobs)]
        make_jobs(job_list)
        for count in dashboards:
            log = tmp / f"sidecar-{count}.log"
            server = await start_logged_sidecar(root, log)
            try:
                await wait_listed(server.url, jobs)
                phase = await measure_dashboards(
                    server.url, job_list, dashboards=count,
                    pids={"sidecar": server.process.pid}, window=seconds, loads=loads,
                )  # fmt: skip
            finally:
                await server.stop()
            phase["sidecar_log_problems"] = log_problems(log)
            phases[f"{count} dashboards"] = phase
    return {
        "scenario": "dashboards",
        "load": f"picows on uvloop, {loads} processes, {PROBES} probes each; writer in its own process",
        "jobs": jobs,
        "seconds": seconds,
        "settings": {
            "dashboards": list(dashboards),
            "writes_per_second": jobs,
            "sidecar": "a fresh one per phase, on the same jobs root",
            "sidecar_args": ["--log-level", "warning", *LIMITS],
        },
        "phases": phases,
        "targets": targets(phases),
    }


def targets(phases: dict[str, Any], *, via: str = "") -> dict[str, str]:
    """The verdicts: at 100 dashboards, rate, lag and CPU; at 1,000, lag; and for every phase,
    every dashboard connected and kept. ``via``: words for the names (" via gateway")."""
    out = {}
    by_count = {p["dashboards"]: p for p in phases.values()}
    server = "gateway" if via else "sidecar"
    if (p := by_count.get(100)) is not None:
        out[f"100 dashboards{via}: messages/s per dashboard (median) >= 9"] = verdict(
            p["messages_per_second"]["median"], 9, higher_is_better=True
        )
        out[f"100 dashboards{via}: lag write -> list p99 <= 250 ms"] = verdict(
            p["lag_ms"]["p99"], 250
        )
        out[f"100 dashboards{via}: {server} CPU <= 60 % of a core"] = verdict(
            p["cpu_percent"][server], 60
        )
    if (p := by_count.get(1000)) is not None:
        out[f"1,000 dashboards{via}: lag write -> list p99 <= 1,000 ms"] = verdict(
            p["lag_ms"]["p99"], 1000
        )
    out[f"dashboards{via}: every one connected, held its snapshot and was kept"] = verdict(
        sum(
            p["dashboards"] - p["snapshots_held"] + p["connect_errors"] + p["dropped"]
            for p in phases.values()
        ),
        0,
    )
    return out


def phase_table(phases: dict[str, Any], title: str, server: str = "sidecar") -> str:
    """One row per phase: connect, CPU, RSS, rate, lag, snapshots, GC."""
    rows = []
    for name, p in phases.items():
        lag, gc = p["lag_ms"], p["gc"]
        connect = p["connect_seconds"]
        rows.append(
            [name, "-" if connect is None else connect, p["cpu_percent"][server],
             p["peak_rss_mb"][server], p["messages_per_second"]["median"],
             p["messages_per_second"]["min"], p["kb_per_second_median"], lag["n"], lag["p50"],
             lag["p99"], lag["max"], p["lag_unseen"], p["snapshots_after_first"],
             p["connect_errors"] + p["dashboards"] - p["snapshots_held"] + p["dropped"],
             "-" if gc is None else 1000 * gc["pause_seconds"],
             "-" if gc is None else 1000 * gc["max_pause_seconds"]]
        )  # fmt: skip
    headers = [title, "connect s", f"{server} CPU %", "peak RSS MB", "msg/s med", "msg/s min",
               "KB/s med", "lag n", "lag p50 ms", "p99", "max", "unseen", "later snapshots",
               "failed", "GC ms", "GC max ms"]  # fmt: skip
    return table(headers, rows)


def report(result: dict[str, Any]) -> str:
    lines = [phase_table(result["phases"], f"dashboards, {result['jobs']:,} jobs at 1 Hz")]
    for name, p in result["phases"].items():
        w = p["writer"]
        lines.append(
            f"{name}: writer {w['writes_per_second']:.0f} writes/s (late p99 "
            f"{w['late_ms']['p99']:.1f} ms), load CPU {p['cpu_percent']['load']:.0f} %, "
            f"writer CPU {p['cpu_percent']['writer']:.0f} %, {p['probes']} probes"
        )
        for line in p.get("sidecar_log_problems", [])[:3]:
            lines.append(f"  sidecar log: {line}")
    lines += [f"target {t}: {v}" for t, v in result["targets"].items()]
    return "\n".join(lines)
