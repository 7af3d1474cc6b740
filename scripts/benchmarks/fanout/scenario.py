"""The fan-out scenario: every phase, the targets, and the report."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from benchmarks.common import table, verdict
from benchmarks.fanout.phases import CLIENTS, JOBS, LOADS, PHASES, Phase, run_phases


async def run(
    *, seconds: float = 20, jobs: int = JOBS, clients: int = CLIENTS, phases: tuple[Phase, ...] = PHASES
) -> dict[str, Any]:  # fmt: skip
    results = await run_phases(phases, seconds=seconds, jobs=jobs, clients=clients)
    sidecar = {n: p for n, p in results.items() if p["server"] == "sidecar"}
    targets = {}
    for name, limit in (
        ("independent 2 Hz", 10),
        ("independent 10 Hz", 20),
        ("lockstep 2 Hz", 100),
    ):
        if name in results:
            targets[f"{name}: p99 <= {limit} ms"] = verdict(
                results[name]["latency_ms"]["p99"], limit
            )
    for name, p in sidecar.items():
        ordinary = p["ordinary_tick_ms"]["p99"]
        targets[f"{name}: terminal tick p99 <= 1.5 x ordinary tick p99 ({ordinary:.1f} ms)"] = (
            verdict(p["terminal_tick_ms"]["p99"], 1.5 * ordinary)
        )
    if "independent 10 Hz" in results:
        targets["independent 10 Hz: sidecar CPU < 100 % of a core"] = verdict(
            results["independent 10 Hz"]["server_cpu_percent"], 100
        )
    targets["peak RSS <= 200 MB"] = verdict(
        max(p["server_peak_rss_mb"] for p in sidecar.values()), 200
    )
    targets["lost final states, errors and closes not 1000 == 0"] = verdict(
        sum(p["final_lost"] + p["errors"] + p["close_not_1000"] for p in sidecar.values()), 0
    )
    ratios = {}
    legacy = next((p for p in results.values() if p["server"] != "sidecar"), None)
    if legacy is not None and "independent 2 Hz" in results:
        ratios["seed's loop / sidecar p50, independent 2 Hz"] = (
            legacy["latency_ms"]["p50"] / results["independent 2 Hz"]["latency_ms"]["p50"]
        )
    return {
        "scenario": "fan-out",
        "load": f"picows, {LOADS} processes; writer in its own process",
        "clients": clients,
        "jobs": jobs,
        "seconds": seconds,
        "settings": {"phases": [asdict(p) for p in phases]},
        "phases": results,
        "ratios": ratios,
        "targets": targets,
    }


def report(result: dict[str, Any]) -> str:
    rows = []
    for name, p in result["phases"].items():
        lat, term = p["latency_ms"], p["terminal_tick_ms"]
        rows.append(
            [name, lat["n"], lat["p50"], lat["p99"], lat["max"], term["p99"], p["server_cpu_percent"],
             p["load_cpu_percent"], p["writer_cpu_percent"], p["server_peak_rss_mb"],
             p["final_lost"] + p["errors"] + p["close_not_1000"]]
        )  # fmt: skip
    headers = [f"fan-out, {result['clients']:,} clients, {result['jobs']} jobs", "deliveries",
               "p50 ms", "p99 ms", "max ms", "terminal p99", "server CPU %", "load CPU %",
               "writer CPU %", "peak RSS MB", "lost"]  # fmt: skip
    lines = [table(headers, rows), ""]
    term_rows = []
    for name, p in result["phases"].items():
        o, t = p["ordinary_tick_ms"], p["terminal_tick_ms"]
        c = p["close_after_final_ms"]
        term_rows.append(
            [name, o["p50"], o["p99"], o["max"], t["n"], t["p50"], t["p99"], t["max"], c["p50"],
             c["p99"], c["max"]]
        )  # fmt: skip
    term_headers = ["ticks", "ordinary p50", "ordinary p99", "ordinary max", "terminal n",
                    "terminal p50", "terminal p99", "terminal max", "close after final p50",
                    "p99", "max"]  # fmt: skip
    lines.append(table(term_headers, term_rows))
    for name, p in result["phases"].items():
        if e := p.get("server_event_to_send"):
            lines.append(
                f"{name}, inside the sidecar (file event to send, {e['sends']:.0f} sends): "
                f"mean {e['mean_ms']:.1f} ms, {e['under_5_ms']:.0%} under 5 ms, "
                f"{e['under_10_ms']:.0%} under 10, {e['under_20_ms']:.0%} under 20, "
                f"{e['under_100_ms']:.0%} under 100"
            )
    lines += [f"{name}: x{ratio:.0f}" for name, ratio in result["ratios"].items()]
    lines += [f"target {t}: {v}" for t, v in result["targets"].items()]
    return "\n".join(lines)
