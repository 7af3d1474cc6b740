#!/usr/bin/env python3
"""progress-sidecar's benchmarks: each scenario runs the sidecar and its contenders side by side.

    .venv/bin/python scripts/bench.py --all                 # all but --cluster, --intervals, --event-loops: about 5 minutes
    .venv/bin/python scripts/bench.py --latency --idle      # some of them
    .venv/bin/python scripts/bench.py --cluster             # Redis, nodes, a gateway: about 4 minutes

Each prints a table with every figure beside its target, and writes JSON (and the latency CDF
plot) under bench-results/. docs/benchmarks.md explains the scenarios and holds the latest run.
--cluster needs redis-server and the cluster extra; --all leaves it out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks import bytes as bytes_scenario
from benchmarks import (
    cluster,
    dashboards,
    fanout,
    history_flood,
    idle,
    intervals,
    latency,
    legacy,
    loops,
    many_jobs,
    memory,
    startup,
    viewers,
)
from benchmarks.common import machine, run_info
from benchmarks.plot import latency_cdf

SCENARIOS = {
    "latency": latency,
    "fanout": fanout,
    "idle": idle,
    "bytes": bytes_scenario,
    "startup": startup,
    "history_flood": history_flood,
    "intervals": intervals,
    "cluster": cluster,
    "event_loops": loops,
    "many_jobs": many_jobs,
    "memory": memory,
    "dashboards": dashboards,
    "viewers": viewers,
}
# redis-server (and the cluster extra); 6 minutes; 4 minutes; 3 minutes; thousands of clients.
NOT_IN_ALL = {"cluster", "intervals", "event_loops", "many_jobs", "dashboards", "viewers"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument(
        "--all",
        action="store_true",
        help="run every scenario but --cluster (it needs redis-server), --intervals (6 min), "
        "--event-loops (4 min), --many-jobs (100,000 directories, 3 min), --dashboards "
        "(1,000 clients, 2 min) and --viewers (10,000 clients, 1 min)",
    )
    for name, module in SCENARIOS.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            action="store_true",
            help=(module.__doc__ or "").split("\n")[0],
        )
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="where results go")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short runs, to check that the scenarios work (figures are not meaningful)",
    )
    parser.add_argument("--legacy-server", metavar="ROOT", help=argparse.SUPPRESS)
    parser.add_argument("--fanout-load", metavar="SPEC", help=argparse.SUPPRESS)
    parser.add_argument("--fanout-writer", metavar="SPEC", help=argparse.SUPPRESS)
    parser.add_argument("--cluster-worker", metavar="SPEC", help=argparse.SUPPRESS)
    parser.add_argument("--many-jobs-probe", metavar="SPEC", help=argparse.SUPPRESS)
    parser.add_argument("--dashboards-load", metavar="SPEC", help=argparse.SUPPRESS)
    parser.add_argument("--jobs-writer", metavar="SPEC", help=argparse.SUPPRESS)
    parser.add_argument("--viewers-load", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.legacy_server:
        asyncio.run(legacy.serve(Path(args.legacy_server)))
        return 0
    if args.fanout_load:
        fanout.load(args.fanout_load)
        return 0
    if args.fanout_writer:
        fanout.writer(args.fanout_writer)
        return 0
    if args.cluster_worker:
        cluster.worker(args.cluster_worker)
        return 0
    if args.many_jobs_probe:
        many_jobs.probe(args.many_jobs_probe)
        return 0
    if args.dashboards_load:
        dashboards.load(args.dashboards_load)
        return 0
    if args.jobs_writer:
        dashboards.writer(args.jobs_writer)
        return 0
    if args.viewers_load:
        viewers.load(args.viewers_load)
        return 0
    chosen = [
        name for name in SCENARIOS if (args.all and name not in NOT_IN_ALL) or getattr(args, name)
    ]
    if not chosen:
        parser.error(
            "choose scenarios (--latency, --fanout, --idle, --bytes, --startup, --history-flood, "
            "--intervals, --cluster, --event-loops, --memory, --many-jobs, --dashboards, --viewers) or --all"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}\n")
    missed = 0
    for name in chosen:
        began = time.monotonic()
        options = _options(name, args.quick)
        if name == "cluster":
            options["keep_logs"] = args.out / "cluster-logs"
        result: dict[str, Any] = asyncio.run(SCENARIOS[name].run(**options))
        result["machine"] = machine()
        result.update(run_info())
        result["wall_seconds"] = time.monotonic() - began
        print(
            f"== {name} ({result['wall_seconds']:.0f} s)\n{SCENARIOS[name].report(result)}\n",
            flush=True,
        )
        if name == "latency":
            plot = args.out / "latency-cdf.png"
            latency_cdf(
                result["samples_ms"],
                plot,
                title=f"write to receive, 1 job at {result['rate_hz']:.0f} Hz",
            )
            print(f"plot: {plot}\n")
        missed += sum(v != "ok" for v in result["targets"].values())
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"targets missed: {missed}; results in {args.out}/")
    return 0


def _options(name: str, quick: bool) -> dict[str, Any]:
    if not quick:
        return {}
    return {
        "latency": {"seconds": 3, "rounds": 3},
        "fanout": {"seconds": 3, "jobs": 10, "clients": 100},
        "idle": {"seconds": 3},
        "bytes": {"steps": 40, "interval": 0.05},
        "startup": {"rounds": 1},
        "many_jobs": {
            "jobs": 2000,
            "files": 20,
            "rest_seconds": 2,
            "settle_seconds": 1,
            "rounds": 1,
        },
        "dashboards": {"jobs": 100, "dashboards": (10, 100), "seconds": 3},
        "viewers": {"jobs": 10, "per_job": 20, "seconds": 3, "loads": 2},
        "memory": {"rewrite_count": 10, "history_jobs": 10, "history_lines": 1000},
        "history_flood": {"append_mb": 10, "file_mb": 20, "rounds": 1, "baseline_seconds": 1},
        "intervals": {"plan": ((0.05, 1, 2), (0.5, 2, 3))},
        "event_loops": {
            "latency_seconds": 2,
            "fanout_seconds": 2,
            "idle_seconds": 2,
            "jobs": 5,
            "clients": 20,
        },
        "cluster": {
            "latency_rates": ((20, 2), (2, 2)),
            "nodes": 2,
            "jobs_per_node": 5,
            "clients": 20,
            "workers": 2,
            "seconds": 3,
            "throughput_seconds": 1,
            "crowd_jobs": 100,
            "crowd_dashboards": 100,
            "crowd_viewer_jobs": 10,
            "crowd_per_job": 20,
            "crowd_seconds": 3,
        },
    }[name]


if __name__ == "__main__":
    sys.exit(main())
