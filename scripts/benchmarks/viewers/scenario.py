"""The viewers scenario: 100 jobs rewritten once a second each, 10,000 clients of
``/ws/training/{job}`` connecting at once; the targets and the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import table, verdict
from benchmarks.dashboards.server import (
    LIMITS,
    disk_tmp,
    log_problems,
    start_logged_sidecar,
    wait_listed,
)
from benchmarks.dashboards.writer import make_jobs
from benchmarks.viewers.measure import LOADS, measure_viewers

JOBS = 100
PER_JOB = 100


async def run(
    *, jobs: int = JOBS, per_job: int = PER_JOB, seconds: float = 30, loads: int = LOADS
) -> dict[str, Any]:
    """The storm and the window, on one sidecar."""
    with disk_tmp() as name:
        tmp = Path(name)
        root = tmp / "jobs"
        job_list = [(root, f"job{j:03d}") for j in range(jobs)]
        make_jobs(job_list)
        log = tmp / "sidecar.log"
        server = await start_logged_sidecar(root, log)
        try:
            await wait_listed(server.url, jobs)
            result = await measure_viewers(
                server.url, job_list, per_job=per_job, pids={"sidecar": server.process.pid},
                window=seconds, loads=loads,
            )  # fmt: skip
        finally:
            await server.stop()
        problems = log_problems(log)
    return {
        "scenario": "viewers",
        "load": f"picows on uvloop, {loads} processes; writer in its own process",
        "seconds": seconds,
        "settings": {
            "jobs": jobs,
            "clients_per_job": per_job,
            "writes_per_second": jobs,
            "sidecar_args": ["--log-level", "warning", *LIMITS],
        },
        **result,
        "sidecar_log_problems": problems,
        "targets": targets(result),
    }


def targets(result: dict[str, Any], *, via: str = "", server: str = "sidecar") -> dict[str, str]:
    """The verdicts: the storm within 3 s, p99, RSS, nothing lost. ``via``: " via gateway"."""
    storm = result["storm"]["all_snapshots_seconds"]
    return {
        f"viewers{via}: every client holds its snapshot within 3 s of the storm": verdict(
            float("inf") if storm is None else storm, 3
        ),
        f"viewers{via}: write -> receive p99 <= 30 ms": verdict(result["latency_ms"]["p99"], 30),
        f"viewers{via}: {server} peak RSS <= 300 MB": verdict(result["peak_rss_mb"][server], 300),
        f"viewers{via}: final states lost, failures and closes not 1000 == 0": verdict(
            result["final_lost"] + result["storm"]["failures"] + result["close_not_1000"], 0
        ),
    }


def viewers_lines(result: dict[str, Any], server: str = "sidecar") -> list[str]:
    """The storm's and the window's figures, as a table and a few lines."""
    s, lat = result["storm"], result["latency_ms"]
    hs = s["handshake_ms"]
    storm = s["all_snapshots_seconds"]
    rows = [
        ["storm", "-" if storm is None else storm, hs["p50"], hs["p99"], hs["max"], s["failures"],
         s["cpu_percent"][server], "", "", "", "", ""],
        ["window", "", "", "", "", result["final_lost"] + result["close_not_1000"],
         result["cpu_percent"][server], result["peak_rss_mb"][server], lat["n"], lat["p50"],
         lat["p99"], lat["max"]],
    ]  # fmt: skip
    headers = [f"viewers, {result['clients']:,} clients on {result['jobs']} jobs",
               "all snapshots s", "handshake p50 ms", "p99", "max", "failed/lost",
               f"{server} CPU %", "peak RSS MB", "deliveries", "p50 ms", "p99 ms", "max ms"]  # fmt: skip
    w = result["writer"]
    kernel = ", ".join(f"{k.split('.')[1]} {v}" for k, v in s["kernel"].items() if v)
    lines = [
        table(headers, rows),
        f"kernel during the storm: {kernel or 'nothing counted'}",
        f"writer {w['writes_per_second']:.0f} writes/s (late p99 {w['late_ms']['p99']:.1f} ms); "
        f"load CPU {result['cpu_percent']['load']:.0f} %; deliveries expected "
        f"{result['deliveries_expected']}",
    ]
    lines += [f"connect error: {e}" for e in s["connect_error_examples"]]
    return lines


def report(result: dict[str, Any]) -> str:
    lines = viewers_lines(result)
    lines += [f"  sidecar log: {line}" for line in result["sidecar_log_problems"][:3]]
    lines += [f"target {t}: {v}" for t, v in result["targets"].items()]
    return "\n".join(lines)
