"""The cluster scenario's report: its tables and lines, every target with its verdict."""

from __future__ import annotations

from typing import Any

from benchmarks.common import table
from benchmarks.dashboards import phase_table
from benchmarks.viewers import viewers_lines


def report(result: dict[str, Any]) -> str:
    lines = []
    rows = []
    for name, phase in result["latency"]["rates"].items():
        for label, f in phase["results_ms"].items():
            rows.append([f"{name}, {label}", f["n"], f["p50"], f["p99"], f["max"]])
        added = phase["added_ms"]
        per = phase["added_per_write_ms"]
        rows.append([f"{name}, added (gateway - A)", "", added["p50"], added["p99"], ""])
        rows.append([f"{name}, added write by write", per["n"], per["p50"], per["p99"], per["max"]])
    lines.append(table(["write to client (ms)", "n", "p50", "p99", "max"], rows))
    s = result["scale"]
    lat = s["latency_ms"]
    lines.append(
        f"\nscale: {s['nodes']} nodes x {s['jobs'] // s['nodes']} jobs at {s['rate_hz']:g} Hz, "
        f"{s['clients']} clients on one gateway: {lat['n']} deliveries, p50 {lat['p50']:.1f} ms, "
        f"p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms; writes lost {s['writes_lost']}, "
        f"coalesced {s['writes_coalesced']}, final states lost {s['final_states_lost']}, "
        f"client errors {s['client_errors']}, backwards {s['states_backwards']}"
    )
    lines.append(
        "CPU (% of a core): " + ", ".join(f"{k} {v:.1f}" for k, v in s["cpu_percent"].items())
    )
    r = s["redis"]
    lines.append(
        f"Redis: {r['used_memory_mb']:.1f} MB used, {r['stream_length']} entries in "
        f"{r['streams']} streams, "
        f"{r['keys']} keys; {s['redis_cpu_us_per_change']:.0f} us of Redis CPU per change"
    )
    per = s["redis_commands_per_change"]
    lines.append(
        "Redis commands per change: "
        + ", ".join(f"{name} {v['calls_per_change']:.2f}" for name, v in per.items())
    )
    rec = result["recovery"]
    lines.append(
        f"\nrecovery: Redis down {rec['redis_down_seconds']:.2f} s; every final state in Redis "
        f"again {_s(rec['redis_refilled_seconds'])} after the restart; gateway's bus up after "
        f"{_s(rec['gateway_bus_up_seconds'])}; gateway short of a final state in "
        f"{rec['gateway_polls_short_of_final']} of {rec['gateway_polls']} polls; a new gateway "
        f"held all {rec['jobs']} after {_s(rec['new_gateway_all_final_seconds'])}; clients: "
        f"{rec['clients_not_final']} of {rec['clients']} not final, {rec['clients_backwards']} "
        "backwards"
    )
    t = result["redis_throughput"]
    rows = [
        [name, v["changes_per_second"], v["redis_cpu_percent"], v["redis_cpu_us_per_change"],
         v["per_core_ceiling_changes_per_second"]]
        for name, v in t["variants"].items()
    ]  # fmt: skip
    a = t["at_scale"]
    rows.append(
        [f"at scale ({a['stream_readers']} readers)", a["changes_per_second"],
         a["redis_cpu_percent"], a["redis_cpu_us_per_change"],
         100 * a["changes_per_second"] / max(a["redis_cpu_percent"], 1e-9)]
    )  # fmt: skip
    lines.append(f"\nRedis alone, {t['message_bytes']}-byte messages, 2 redis-py publishers:")
    lines.append(
        table(["publishing", "changes/s", "Redis CPU %", "us/change", "changes/s per core"], rows)
    )
    lines += _crowds(result["crowds"])
    for name, log in result["logs"].items():
        if log["unexpected"]:
            lines.append(f"{name}: {log['unexpected']} unexpected log lines, e.g.")
            lines += [f"  {line}" for line in log["unexpected_lines"][:3]]
    lines += [f"target {t}: {v}" for t, v in result["targets"].items()]
    return "\n".join(lines)


def _crowds(crowds: dict[str, Any]) -> list[str]:
    """Part 5: the dashboards' table and the viewers', measured on the gateway."""
    d, v = crowds["dashboards"], crowds["viewers"]
    title = f"\ndashboards via gateway, {d['jobs']:,} jobs over {d['nodes']} nodes at 1 Hz"
    lines = [phase_table({f"{d['dashboards']} dashboards": d}, title, server="gateway")]
    for name, part in (("dashboards", d), ("viewers", v)):
        lines.append(
            f"{name} via gateway, CPU (% of a core): "
            + ", ".join(f"{k} {x:.1f}" for k, x in part["cpu_percent"].items())
        )
    lines.append(f"\nviewers via gateway, {v['nodes']} nodes:")
    lines += viewers_lines(v, server="gateway")
    return lines


def _s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.2f} s"
