"""The many-jobs result: what was measured, the stall of each window, the targets, the report."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from benchmarks.common import percentiles, table, verdict
from benchmarks.many_jobs.clients import PAGE
from benchmarks.many_jobs.stall_probe import round_trips

READY_TARGET_S = 10.0
CPU_TARGET = 2.0
RSS_TARGET_MB = 300.0
STALL_TARGET_MS = 50.0


@dataclass(frozen=True)
class Measured:
    """What a run measured, as ``scenario.run`` took it."""

    jobs: int
    files: int
    make_root_seconds: float
    listening_seconds: float
    ready_seconds: float
    settle_seconds: float
    rest_seconds: float
    rss_rest_mb: float
    cpu_rest_percent: float
    windows: dict[str, list[tuple[float, float]]]
    """The probe's windows: each heavy client's (began, ended), by name."""
    probed: dict[str, Any]
    """The probe's output: its samples (start, round trip ms) and errors."""
    listings: list[dict[str, Any]]
    paged: list[dict[str, Any]]
    one: list[dict[str, Any]]
    three: list[dict[str, Any]]
    rss_after_mb: float
    rss_peak_mb: float


def summary(m: Measured) -> dict[str, Any]:
    """The scenario's result (its JSON): every figure and target."""
    stalls: dict[str, Any] = {}
    for name, windows in m.windows.items():
        by_round = [round_trips(m.probed["samples"], b, e) for b, e in windows]
        every = [rtt for trips in by_round for rtt in trips]
        stalls[name] = {
            "worst_ms": max(every, default=float("nan")),
            "per_round_worst_ms": [max(trips, default=float("nan")) for trips in by_round],
            "round_trip_ms": percentiles(every),
            f"over_{STALL_TARGET_MS:g}_ms": sum(rtt > STALL_TARGET_MS for rtt in every),
            "probe_requests": len(every),
            "seconds": [e - b for b, e in windows],
        }
    rtts = [rtt for _at, rtt in m.probed["samples"]]
    heavy = [name for name in stalls if name != "quiet"]
    # A window no probe request overlapped (a very short one, with --quick) shows nothing.
    shown = {n: stalls[n]["worst_ms"] for n in heavy if stalls[n]["probe_requests"]}
    listing_stall = max((v for n, v in shown.items() if n.startswith("GET")), default=0.0)
    ws_stall = max((v for n, v in shown.items() if not n.startswith("GET")), default=0.0)
    return {
        "scenario": "many_jobs",
        "jobs": m.jobs,
        "files": m.files,
        "root": f"{m.jobs:,} job directories: {m.files} with a running job's progress.json written "
        "an hour ago, the rest empty (pending)",
        "sidecar flags": "defaults",
        "make_root_seconds": m.make_root_seconds,
        "listening_seconds": m.listening_seconds,
        "ready_seconds": m.ready_seconds,
        "rest": {
            "settle_seconds": m.settle_seconds,
            "seconds": m.rest_seconds,
            "rss_mb": m.rss_rest_mb,
            "cpu_percent": m.cpu_rest_percent,
        },
        "probe": {
            "what": "GET /healthz on a fresh connection, every 5 ms, from its own process",
            "requests": len(rtts),
            "errors": m.probed["errors"],
            "p50_ms": statistics.median(rtts) if rtts else float("nan"),
        },
        "stall_ms": stalls,
        "listings": {
            "GET /api/jobs": [
                {k: v for k, v in listing.items() if k not in ("began", "ended")}
                | {"seconds": listing["ended"] - listing["began"]}
                for listing in m.listings
            ],
            f"GET /api/jobs?limit={PAGE}, every page": [
                {k: v for k, v in p.items() if k not in ("began", "ended")}
                | {"seconds": p["ended"] - p["began"]}
                for p in m.paged
            ],
            "1 dashboard": [
                {"snapshot_seconds": r["snapshot_seconds"], "jobs": r["jobs"]} for r in m.one
            ],
            "3 dashboards": [
                {"snapshot_seconds": r["snapshot_seconds"], "jobs": r["jobs"]} for r in m.three
            ],
        },
        "rss_after_clients_mb": m.rss_after_mb,
        "rss_peak_mb": m.rss_peak_mb,
        "targets": {
            f"ready <= {READY_TARGET_S:g} s": verdict(m.ready_seconds, READY_TARGET_S),
            f"CPU at rest <= {CPU_TARGET:g} % of a core": verdict(m.cpu_rest_percent, CPU_TARGET),
            f"RSS at rest <= {RSS_TARGET_MB:g} MB": verdict(m.rss_rest_mb, RSS_TARGET_MB),
            f"stall during /api/jobs <= {STALL_TARGET_MS:g} ms": verdict(
                listing_stall, STALL_TARGET_MS
            ),
            f"stall during /ws/jobs <= {STALL_TARGET_MS:g} ms": verdict(ws_stall, STALL_TARGET_MS),
            "every job listed, every page, every snapshot": verdict(
                sum(
                    [listing["jobs"] != m.jobs for listing in m.listings]
                    + [p["distinct"] != m.jobs or not p["sorted"] for p in m.paged]
                    + [n != m.jobs for r in m.one + m.three for n in r["jobs"]]
                ),
                0,
            ),
        },
    }


def report(result: dict[str, Any]) -> str:
    rest = result["rest"]
    lines = [
        f"{result['root']}",
        f"ready {result['ready_seconds']:.2f} s (listening after {result['listening_seconds']:.2f} s); "
        f"at rest: RSS {rest['rss_mb']:.0f} MB, CPU {rest['cpu_percent']:.2f} % over "
        f"{rest['seconds']:.0f} s; after the clients: RSS {result['rss_after_clients_mb']:.0f} MB "
        f"(peak {result['rss_peak_mb']:.0f} MB)",
        "",
    ]
    over = f"over_{STALL_TARGET_MS:g}_ms"
    rows = [
        [
            name,
            s["worst_ms"],
            s["round_trip_ms"]["p99"],
            s["round_trip_ms"]["p50"],
            s[over],
            s["probe_requests"],
            max(s["seconds"]),
        ]
        for name, s in result["stall_ms"].items()
    ]
    headers = ["while (probe: GET /healthz)", "worst ms", "p99 ms", "p50 ms", over, "probes"]
    lines.append(table([*headers, "took s"], rows))
    listing = result["listings"]["GET /api/jobs"][0]
    lines.append(f"GET /api/jobs: {listing['bytes']:,} bytes, {listing['jobs']:,} jobs")
    lines += [f"target {t}: {v}" for t, v in result["targets"].items()]
    return "\n".join(lines)
