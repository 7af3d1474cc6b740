"""The cluster scenario: its four parts in turn, on processes of their own, and its targets."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.cluster.added_latency import added_latency
from benchmarks.cluster.crowds import gateway_crowds
from benchmarks.cluster.measure import log_lines
from benchmarks.cluster.processes import LIMITS, Sidecar, redis_version
from benchmarks.cluster.scale import scale_and_recovery
from benchmarks.cluster.throughput import redis_throughput
from benchmarks.common import verdict
from benchmarks.dashboards import targets as dashboards_targets
from benchmarks.viewers import targets as viewers_targets

ADDED_P99_TARGET_MS = 10.0


async def run(
    *,
    latency_rates: tuple[tuple[float, float], ...] = ((20, 30), (2, 20)),
    nodes: int = 3,
    jobs_per_node: int = 100,
    clients: int = 1000,
    workers: int = 4,
    rate: float = 2,
    seconds: float = 25,
    throughput_seconds: float = 10,
    crowd_jobs: int = 1000,
    crowd_dashboards: int = 100,
    crowd_viewer_jobs: int = 100,
    crowd_per_job: int = 100,
    crowd_seconds: float = 20,
    keep_logs: Path | None = None,
) -> dict[str, Any]:
    """The five parts in turn; ``keep_logs``: a folder where every sidecar's log is kept."""
    logs: list[Sidecar] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        latency = await added_latency(tmp, logs, list(latency_rates))
        scale, recovery, message = await scale_and_recovery(
            tmp, logs, nodes=nodes, jobs_per_node=jobs_per_node, clients=clients,
            workers=workers, rate=rate, seconds=seconds,
        )  # fmt: skip
        crowds = await gateway_crowds(
            tmp, logs, nodes=nodes, dashboard_jobs=crowd_jobs, dashboards=crowd_dashboards,
            viewer_jobs=crowd_viewer_jobs, per_job=crowd_per_job, seconds=crowd_seconds,
        )  # fmt: skip
        throughput = await redis_throughput(
            tmp,
            message,
            throughput_seconds,
            [
                ("1 change per transaction", 2, 1, 0),
                ("1 change per transaction, 4 stream readers", 2, 1, 4),
                ("100 changes per transaction", 2, 100, 0),
                ("100 changes per transaction, 4 stream readers", 2, 100, 4),
            ],
        )
        log_report = log_lines(logs)
        if keep_logs is not None:
            keep_logs.mkdir(parents=True, exist_ok=True)
            for sidecar in logs:
                shutil.copy(sidecar.log, keep_logs / sidecar.log.name)
    throughput["at_scale"] = {
        "changes_per_second": scale["writes_per_second"],
        "redis_cpu_percent": scale["cpu_percent"]["redis"],
        "redis_cpu_us_per_change": scale["redis_cpu_us_per_change"],
        "stream_readers": nodes + 1,
    }
    first = next(iter(latency["rates"].values()))
    unexpected = sum(v["unexpected"] for v in log_report.values())
    return {
        "scenario": "cluster",
        "settings": {
            "latency_rates_hz_seconds": [list(r) for r in latency_rates],
            "nodes": nodes,
            "jobs_per_node": jobs_per_node,
            "clients": clients,
            "load_processes": workers,
            "rate_hz": rate,
            "seconds": seconds,
            "throughput_seconds": throughput_seconds,
            "crowds": {
                "dashboard_jobs": crowd_jobs,
                "dashboards": crowd_dashboards,
                "viewer_jobs": crowd_viewer_jobs,
                "viewers_per_job": crowd_per_job,
                "seconds": crowd_seconds,
                "writes_per_second": "each job once a second",
            },
            "sidecar_args": ["--log-level", "info", *LIMITS],
            "redis_users": (
                "every sidecar and load worker an ACL user of its own (progress-sidecar "
                "redis-acl), its URL in SIDECAR_REDIS_URL; the default user has a password"
            ),
            "redis_server": redis_version(),
        },
        "latency": latency,
        "scale": scale,
        "recovery": recovery,
        "redis_throughput": throughput,
        "crowds": crowds,
        "logs": log_report,
        "targets": {
            f"added p99 (gateway - node) at {first['rate_hz']:g} Hz <= {ADDED_P99_TARGET_MS:g} ms": verdict(
                first["added_ms"]["p99"], ADDED_P99_TARGET_MS
            ),
            "scale: writes lost == 0": verdict(scale["writes_lost"], 0),
            "scale: final states lost == 0": verdict(
                scale["final_states_lost"] + scale["client_errors"], 0
            ),
            "recovery: every final state in Redis again": verdict(
                0 if recovery["redis_refilled_seconds"] is not None else 1, 0
            ),
            "recovery: the gateway lists every final state throughout": verdict(
                recovery["gateway_polls_short_of_final"], 0
            ),
            "recovery: no state backwards": verdict(
                recovery["clients_backwards"]
                + recovery["clients_not_final"]
                + scale["states_backwards"],
                0,
            ),
            "sidecar logs: no unexpected warning or error": verdict(unexpected, 0),
            **dashboards_targets({"gateway": crowds["dashboards"]}, via=" via gateway"),
            **viewers_targets(crowds["viewers"], via=" via gateway", server="gateway"),
        },
    }
