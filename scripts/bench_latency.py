#!/usr/bin/env python3
"""Write-to-receive latency: the sidecar against the legacy 2-s polling loop, in one run.

A writer replaces <root>/bench/progress.json atomically at a steady rate. Two WebSocket clients
follow the job at once: one on the sidecar, one on a reproduction of the legacy server's loop
(read the file every 2 s, push what changed). For every write, each client's latency is the
time from the write until it holds that state or a newer one (a poller skips states; the ones
it skips count as late as the state that replaces them). Both servers run as their own
processes. Prints p50/p90/p99/max per contender, the ratios, and the sidecar's CPU idle (before the writes)
and busy; writes JSON to bench-results/latency.json.

    .venv/bin/python scripts/bench_latency.py [--seconds 30] [--rate 20] [--sidecar-arg=...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from aiohttp import web

LEGACY_POLL_SECONDS = 2.0
URL_LINE = re.compile(r"listening on (http://[\d.]+:\d+)")


# The legacy loop, as the seed describes it: poll progress.json every 2 s, push what changed.
async def legacy_server(root: Path) -> None:
    clients: set[web.WebSocketResponse] = set()

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        clients.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            clients.discard(ws)
        return ws

    async def poll(app: web.Application):  # type: ignore[no-untyped-def]
        async def loop() -> None:
            last = None
            while True:
                await asyncio.sleep(LEGACY_POLL_SECONDS)
                try:
                    text = (root / "bench" / "progress.json").read_text()
                except OSError:
                    continue
                if text != last:
                    last = text
                    for ws in list(clients):
                        await ws.send_str(text)

        task = asyncio.create_task(loop())
        yield
        task.cancel()

    app = web.Application()
    app.router.add_get("/ws/training/{job_id}", socket)
    app.cleanup_ctx.append(poll)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"legacy loop listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


async def spawn(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
    match = URL_LINE.search(line)
    if not match:
        raise SystemExit(f"server did not start: {line!r}")
    return process, match.group(1)


async def follow(url: str, received: list[tuple[float, int]], stop: asyncio.Event) -> None:
    """Record (receive time, step) for every state received; both protocols carry the step."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        while not stop.is_set():
            try:
                message = await ws.receive(timeout=0.5)
            except TimeoutError:
                continue
            now = time.time()
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            step = json.loads(message.data).get("current_step")
            if step is not None:
                received.append((now, step))


def latencies(written: dict[int, float], received: list[tuple[float, int]]) -> list[float]:
    """For each write, ms until the client held that step or a later one."""
    samples = []
    index = 0
    for step in sorted(written):
        while index < len(received) and received[index][1] < step:
            index += 1
        if index == len(received):
            break
        samples.append((received[index][0] - written[step]) * 1000)
    return samples


def write(path: Path, step: int, total: int) -> float:
    tmp = path.with_name(".progress.json.tmp")
    state = {
        "job_id": "bench",
        "status": "running",
        "current_step": step,
        "total_steps": total,
        "progress": round(100 * step / total, 2),
        "loss": 2.0 / (1 + step),
    }
    tmp.write_text(json.dumps(state))
    written = time.time()
    os.replace(tmp, path)
    return written


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p90": at(0.90),
        "p99": at(0.99),
        "max": ordered[-1],
    }


async def bench(
    seconds: float, rate: float, idle_seconds: float, sidecar_args: list[str]
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        file = root / "bench" / "progress.json"
        file.parent.mkdir()
        total = int(seconds * rate)
        write(file, 0, total)
        sidecar, sidecar_url = await spawn(
            sys.executable,
            "-m",
            "sidecar",
            "--root",
            tmp,
            "--port",
            "0",
            "--log-level",
            "warning",
            *sidecar_args,
        )
        legacy, legacy_url = await spawn(sys.executable, __file__, "--legacy-server", tmp)
        await asyncio.sleep(1.0)
        idle_began = cpu_seconds(sidecar.pid)
        await asyncio.sleep(idle_seconds)
        idle_cpu = (cpu_seconds(sidecar.pid) - idle_began) / idle_seconds * 100
        stop = asyncio.Event()
        urls = {
            "sidecar": f"{sidecar_url.replace('http', 'ws')}/ws/training/bench",
            "legacy 2-s loop": f"{legacy_url.replace('http', 'ws')}/ws/training/bench",
        }
        received: dict[str, list[tuple[float, int]]] = {name: [] for name in urls}
        followers = [asyncio.create_task(follow(urls[name], received[name], stop)) for name in urls]
        await asyncio.sleep(0.5)
        written: dict[int, float] = {}
        busy_began = cpu_seconds(sidecar.pid)
        began = time.monotonic()
        for step in range(1, total + 1):
            written[step] = write(file, step, total)
            await asyncio.sleep(max(0.0, began + step / rate - time.monotonic()))
        busy_cpu = (cpu_seconds(sidecar.pid) - busy_began) / (time.monotonic() - began) * 100
        await asyncio.sleep(LEGACY_POLL_SECONDS + 0.5)
        stop.set()
        await asyncio.gather(*followers)
        for process in (sidecar, legacy):
            process.terminate()
            await process.wait()
    figures = {name: percentiles(latencies(written, got)) for name, got in received.items()}
    return {
        "scenario": "latency",
        "seconds": seconds,
        "rate_hz": rate,
        "writes": total,
        "sidecar_args": sidecar_args,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "results_ms": figures,
        "sidecar_cpu_percent": {"idle, 1 job": idle_cpu, "while writing": busy_cpu},
        "ratio_p50": figures["legacy 2-s loop"]["p50"] / figures["sidecar"]["p50"],
        "ratio_p99": figures["legacy 2-s loop"]["p99"] / figures["sidecar"]["p99"],
    }


def report(result: dict[str, object]) -> str:
    rows = [f"{'contender':<18}{'n':>6}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'max ms':>10}"]
    for name, fig in result["results_ms"].items():  # type: ignore[attr-defined]
        rows.append(
            f"{name:<18}{fig['n']:>6}{fig['p50']:>10.2f}{fig['p90']:>10.2f}{fig['p99']:>10.2f}{fig['max']:>10.2f}"
        )
    cpu = result["sidecar_cpu_percent"]
    rows.append(
        f"sidecar CPU (% of one core): idle {cpu['idle, 1 job']:.1f}, "  # type: ignore[index]
        f"while writing {cpu['while writing']:.1f}"  # type: ignore[index]
    )
    rows.append(
        f"legacy/sidecar: p50 x{result['ratio_p50']:.0f}, p99 x{result['ratio_p99']:.0f}"
        f"  (targets: sidecar p50 <= 5 ms, p99 <= 20 ms)"
    )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the writer writes")
    parser.add_argument("--rate", type=float, default=20.0, help="writes per second")
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=10.0,
        help="how long to measure the idle sidecar's CPU first",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results/latency.json"))
    parser.add_argument(
        "--sidecar-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="pass ARG to the sidecar (repeatable), e.g. --sidecar-arg=--watch-step-ms=1",
    )
    parser.add_argument("--legacy-server", metavar="ROOT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.legacy_server:
        asyncio.run(legacy_server(Path(args.legacy_server)))
        return 0
    result = asyncio.run(bench(args.seconds, args.rate, args.idle_seconds, args.sidecar_arg))
    print(report(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
