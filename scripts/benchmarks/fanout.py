"""Fan-out: 1,000 WebSocket clients over 100 jobs, written at 2 Hz and 10 Hz.

The clients run in worker processes of their own (4 x 250), apart from the server and from the
writer. For every write and every client of its job, the latency is the time from the write to
the moment the client holds that state or a newer one (as in the latency scenario: a skipped
state is as late as the one that replaced it). At the end every client checks that it holds its
job's final state. The seed's 2-s loop serves the same load at 2 Hz, in between, for comparison.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import (
    BENCH,
    CpuMeter,
    Server,
    latencies,
    peak_rss_mb,
    percentiles,
    start_legacy,
    start_sidecar,
    table,
    verdict,
    write_atomic,
)

JOBS = 100
CLIENTS = 1000
WORKERS = 4


async def worker(base: str, prefix: str, clients: int, offset: int, final_step: int) -> None:
    """One load process: ``clients`` followers; prints 'ready', then one JSON line of results."""
    from sidecar.core.patch import apply_merge_patch

    received: list[tuple[str, list[tuple[float, int]]]] = []
    finals = {"ok": 0, "lost": 0, "errors": 0}
    connected = asyncio.Event()
    count = [0]

    async def follow(session: aiohttp.ClientSession, job: str) -> None:
        state: Any = None
        got: list[tuple[float, int]] = []
        received.append((job, got))
        try:
            async with session.ws_connect(f"{base}/ws/training/{job}") as ws:
                count[0] += 1
                if count[0] == clients:
                    connected.set()
                async for message in ws:
                    now = time.time()
                    data = json.loads(message.data)
                    kind = data.pop("type", "whole")  # the seed's loop sends the file as it is
                    data.pop("seq", None)
                    state = apply_merge_patch(state, data) if kind == "patch" else data
                    if "step" in data:
                        got.append((round(now, 5), state["step"]))
        except (aiohttp.ClientError, OSError):
            finals["errors"] += 1
            connected.set()
            return
        if (
            isinstance(state, dict)
            and state.get("status") == "completed"
            and state.get("step") == final_step
        ):
            finals["ok"] += 1
        else:
            finals["lost"] += 1

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [
            asyncio.create_task(follow(session, f"{prefix}{(offset + i) % JOBS}"))
            for i in range(clients)
        ]
        await asyncio.wait_for(connected.wait(), 120)
        print("ready", flush=True)
        await asyncio.gather(*tasks)
    print(json.dumps({"received": received, **finals}), flush=True)


async def _event_to_send(server: Server) -> dict[str, float] | None:
    """The sidecar's own share: its histogram of file event to send, as mean and fractions."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{server.url}/metrics") as response,
        ):
            if response.status != 200:
                return None
            text = await response.text()
    except aiohttp.ClientError:
        return None
    buckets, total, count = {}, 0.0, 0.0
    for line in text.splitlines():
        if line.startswith("sidecar_event_to_send_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets[le] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("sidecar_event_to_send_seconds_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("sidecar_event_to_send_seconds_count"):
            count = float(line.rsplit(" ", 1)[1])
    if not count:
        return None
    return {
        "mean_ms": 1000 * total / count,
        "under_10_ms": buckets.get("0.01", 0) / count,
        "under_20_ms": buckets.get("0.02", 0) / count,
        "under_50_ms": buckets.get("0.05", 0) / count,
    }


async def _phase(
    server: Server, root: Path, prefix: str, rate: float, seconds: float
) -> dict[str, Any]:
    final_step = int(rate * seconds)
    files = [root / f"{prefix}{j}" / "progress.json" for j in range(JOBS)]
    for file in files:
        file.parent.mkdir()
        write_atomic(file, {"status": "running", "step": 0})
    await asyncio.sleep(0.5)  # the server sees the new jobs
    workers = []
    per_worker = CLIENTS // WORKERS
    for w in range(WORKERS):
        args = [server.ws, prefix, str(per_worker), str(w * per_worker), str(final_step)]
        workers.append(
            await asyncio.create_subprocess_exec(
                sys.executable, str(BENCH), "--fanout-worker", *args, stdout=asyncio.subprocess.PIPE
            )
        )
    for process in workers:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 180)
        assert line.strip() == b"ready", line
    meters = {
        "server": CpuMeter(server.process.pid),
        "clients": [CpuMeter(p.pid) for p in workers],
        "writer": CpuMeter(os.getpid()),
    }
    written: dict[str, dict[int, float]] = {f.parent.name: {} for f in files}
    began = time.monotonic()
    for tick in range(1, final_step + 1):
        if tick == final_step:  # the clients leave at the final state: measure before it
            server_cpu = meters["server"].percent()  # type: ignore[union-attr]
            clients_cpu = sum(m.percent() for m in meters["clients"])  # type: ignore[union-attr]
            writer_cpu = meters["writer"].percent()  # type: ignore[union-attr]
        status = "completed" if tick == final_step else "running"
        for file in files:
            state = {"status": status, "step": tick, "loss": 1 / tick}
            written[file.parent.name][tick] = write_atomic(file, state)
        await asyncio.sleep(max(0.0, began + tick / rate - time.monotonic()))
    results = []
    for process in workers:
        assert process.stdout is not None
        out = await asyncio.wait_for(process.stdout.read(), 180)
        await process.wait()
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    samples = [
        ms for r in results for job, got in r["received"] for ms in latencies(written[job], got)
    ]
    server_side = await _event_to_send(server)
    return {
        "server_event_to_send": server_side,
        "rate_hz": rate,
        "latency_ms": percentiles(samples),
        "final_ok": sum(r["ok"] for r in results),
        "final_lost": sum(r["lost"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "server_cpu_percent": server_cpu,
        "load_clients_cpu_percent": clients_cpu,
        "writer_cpu_percent": writer_cpu,
        "server_peak_rss_mb": peak_rss_mb(server.process.pid),
    }


async def run(*, seconds: float = 20) -> dict[str, Any]:
    phases: dict[str, Any] = {}
    contenders = (
        ("sidecar 2 Hz", 2.0, False),
        ("seed's 2-s loop 2 Hz", 2.0, True),
        ("sidecar 10 Hz", 10.0, False),
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, rate, legacy in contenders:
            server = await (start_legacy(root) if legacy else start_sidecar(root))
            try:
                phases[name] = await _phase(server, root, f"p{len(phases)}-job", rate, seconds)
            finally:
                await server.stop()
    s2, s10, legacy = (
        phases["sidecar 2 Hz"],
        phases["sidecar 10 Hz"],
        phases["seed's 2-s loop 2 Hz"],
    )
    lost = sum(p["final_lost"] + p["errors"] for p in (s2, s10))
    return {
        "scenario": "fan-out",
        "clients": CLIENTS,
        "jobs": JOBS,
        "seconds": seconds,
        "phases": phases,
        "ratios": {
            "seed's loop / sidecar p50 at 2 Hz": legacy["latency_ms"]["p50"]
            / s2["latency_ms"]["p50"]
        },
        "targets": {
            "2 Hz p99 <= 50 ms": verdict(s2["latency_ms"]["p99"], 50),
            "10 Hz p99 <= 100 ms": verdict(s10["latency_ms"]["p99"], 100),
            "10 Hz sidecar CPU < 100 % of a core": verdict(s10["server_cpu_percent"], 100),
            "peak RSS <= 200 MB": verdict(
                max(s2["server_peak_rss_mb"], s10["server_peak_rss_mb"]), 200
            ),
            "lost final states == 0": verdict(lost, 0),
        },
    }


def report(result: dict[str, Any]) -> str:
    rows = []
    for name, p in result["phases"].items():
        lat = p["latency_ms"]
        rows.append(
            [name, lat["n"], lat["p50"], lat["p99"], lat["max"], p["server_cpu_percent"], p["server_peak_rss_mb"],
             p["final_lost"] + p["errors"], p["load_clients_cpu_percent"], p["writer_cpu_percent"]]
        )  # fmt: skip
    headers = ["fan-out, 1,000 clients", "deliveries", "p50 ms", "p99 ms", "max ms", "server CPU %",
               "peak RSS MB", "lost", "clients CPU %", "writer CPU %"]  # fmt: skip
    lines = [table(headers, rows)]
    for name, p in result["phases"].items():
        if p.get("server_event_to_send"):
            e = p["server_event_to_send"]
            lines.append(
                f"{name}, inside the sidecar (file event to send): mean {e['mean_ms']:.1f} ms, "
                f"{e['under_10_ms']:.0%} under 10 ms, {e['under_50_ms']:.0%} under 50 ms"
            )
    lines += [f"{name}: x{ratio:.0f}" for name, ratio in result["ratios"].items()]
    lines += [f"target {t}: {v}" for t, v in result["targets"].items()]
    return "\n".join(lines)
