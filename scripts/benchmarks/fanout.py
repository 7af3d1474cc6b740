"""Fan-out: 1,000 WebSocket clients over 100 jobs, as independent trainers and in lockstep.

Three kinds of process, apart from each other: the server, the writer (which writes the 100
jobs' files on a schedule and notes the time of every rename) and the load, 1,000 clients in
two processes. The load is built on picows, a WebSocket library the sidecar does not use: its
Cython core hands each frame to a plain callback (no future, no task, no reassembly in Python),
so the load costs little per message and the figure is the server's, not the client's
(``websockets`` or aiohttp clients cost several times more per message, and on two cores that
cost lands beside the server's).

Two shapes of write. Independent trainers, the headline: each job on its own phase, one write
of each job every 1/rate s, spread over the period. Lockstep, the worst case: the 100 jobs
written in one burst every 1/rate s. For every write and every client of its job, the latency
is the time from the rename to the moment the client holds that state or a newer one (a skipped
state is as late as the one that replaced it). The terminal tick (the write that completes the
job, after which the server closes the connection) is reported on its own line. At the end
every client checks that it holds its job's final state and got the close code 1000. The
seed's 2-s loop serves the independent shape at 2 Hz, for comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import (
    BENCH,
    Server,
    cpu_seconds,
    latencies_by_step,
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
LOADS = 2
CONNECT_AT_ONCE = 50


@dataclass(frozen=True)
class Phase:
    name: str
    shape: str  # "independent" or "lockstep"
    rate: float
    legacy: bool = False


PHASES = (
    Phase("independent 2 Hz", "independent", 2.0),
    Phase("independent 10 Hz", "independent", 10.0),
    Phase("lockstep 2 Hz", "lockstep", 2.0),
    Phase("lockstep 10 Hz", "lockstep", 10.0),
    Phase("seed's 2-s loop, independent 2 Hz", "independent", 2.0, legacy=True),
)


# The load: picows clients, one process of many.


def load(spec: str) -> None:
    """One load process (``bench.py --fanout-load SPEC``): prints 'ready' once every client is
    connected, then one JSON line of what each client received."""
    import uvloop

    # uvloop under the load as picows' own benchmarks run it: the client's loop, not the server's.
    uvloop.run(_load(**json.loads(spec)))


async def _load(base: str, jobs: list[str], final_step: int, deadline: float) -> None:
    from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    from sidecar.core.patch import apply_merge_patch

    loop = asyncio.get_running_loop()
    left = [len(jobs)]
    all_gone = loop.create_future()

    class Follower(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.state: Any = None
            self.got: list[tuple[float, int]] = []
            self.close_code: int | None = None
            self.final_at: float | None = None  # when the state became complete
            self.close_at: float | None = None  # when the server's close came

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                now = time.time()
                data = json.loads(frame.get_payload_as_bytes())
                kind = data.pop("type", "whole")  # the seed's loop sends the file as it is
                for key in ("seq", "epoch", "resumed"):
                    data.pop(key, None)
                self.state = apply_merge_patch(self.state, data) if kind == "patch" else data
                if "step" in data:
                    self.got.append((now, self.state["step"]))
                if self.final_at is None and self.state.get("status") == "completed":
                    self.final_at = now
            elif frame.msg_type == WSMsgType.CLOSE:
                self.close_at = time.time()
                self.close_code = int(frame.get_close_code())
                transport.send_close(WSCloseCode.OK)
                transport.disconnect()

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            left[0] -= 1
            if not left[0] and not all_gone.done():
                all_gone.set_result(None)

    async def connect(job: str) -> Follower | None:
        try:
            _transport, follower = await ws_connect(Follower, f"{base}/ws/training/{job}")
        except (TimeoutError, OSError, RuntimeError) as e:
            print(f"connect to {job} failed: {e!r}", file=sys.stderr, flush=True)
            left[0] -= 1
            return None
        return follower  # type: ignore[no-any-return]

    followers: list[Follower | None] = []
    for at in range(0, len(jobs), CONNECT_AT_ONCE):
        followers += await asyncio.gather(*(connect(j) for j in jobs[at : at + CONNECT_AT_ONCE]))
    if not left[0]:
        all_gone.set_result(None)
    print("ready", flush=True)
    cpu = time.process_time()
    with contextlib.suppress(TimeoutError):  # those still open count as lost
        await asyncio.wait_for(all_gone, max(1.0, deadline - time.time()))
    results = []
    for job, f in zip(jobs, followers, strict=True):
        if f is None:
            results.append({"job": job, "error": True})
            continue
        state = f.state if isinstance(f.state, dict) else {}
        final = state.get("status") == "completed" and state.get("step") == final_step
        close_ms = (
            (f.close_at - f.final_at) * 1000
            if f.close_at is not None and f.final_at is not None
            else None
        )
        results.append(
            {"job": job, "got": f.got, "final": final, "close": f.close_code, "close_ms": close_ms}
        )
    print(json.dumps({"clients": results, "cpu_seconds": time.process_time() - cpu}), flush=True)


# The writer: its own process, the trainers' side.


def writer(spec: str) -> None:
    """The writer process (``bench.py --fanout-writer SPEC``): writes every job's file on the
    schedule, then prints one JSON line: the time of each rename, its CPU and how late it was."""
    asyncio.run(_write(**json.loads(spec)))


async def _write(files: list[str], shape: str, rate: float, ticks: int) -> None:
    jobs = len(files)
    # (when, job, tick): independent trainers each on their own phase, or all in one burst.
    spread = 1.0 if shape == "independent" else 0.0
    order = sorted(
        ((tick + spread * j / jobs) / rate, j, tick)
        for tick in range(1, ticks + 1)
        for j in range(jobs)
    )
    written: dict[str, dict[int, float]] = {Path(f).parent.name: {} for f in files}
    late = []
    cpu = time.process_time()
    began = time.monotonic() + 0.1
    for at, j, tick in order:
        if (wait := began + at - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        late.append(max(0.0, time.monotonic() - began - at) * 1000)
        path = Path(files[j])
        status = "completed" if tick == ticks else "running"
        written[path.parent.name][tick] = write_atomic(
            path, {"status": status, "step": tick, "loss": 1 / tick}
        )
    print(
        json.dumps(
            {
                "written": written,
                "cpu_seconds": time.process_time() - cpu,
                "late_ms": percentiles(late),
            }
        ),
        flush=True,
    )


# The orchestrator.


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH), *args, stdout=asyncio.subprocess.PIPE
    )


async def _last_json(process: asyncio.subprocess.Process, timeout: float) -> Any:
    assert process.stdout is not None
    out = await asyncio.wait_for(process.stdout.read(), timeout)
    await process.wait()
    return json.loads(out.decode().strip().splitlines()[-1])


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
        "sends": count,
        "mean_ms": 1000 * total / count,
        "under_5_ms": buckets.get("0.005", 0) / count,
        "under_10_ms": buckets.get("0.01", 0) / count,
        "under_20_ms": buckets.get("0.02", 0) / count,
        "under_50_ms": buckets.get("0.05", 0) / count,
        "under_100_ms": buckets.get("0.1", 0) / count,
    }


async def _phase(
    server: Server, root: Path, prefix: str, phase: Phase, *, seconds: float, jobs: int,
    clients: int,
) -> dict[str, Any]:  # fmt: skip
    final_step = max(2, int(phase.rate * seconds))
    files = [root / f"{prefix}{j}" / "progress.json" for j in range(jobs)]
    for file in files:
        file.parent.mkdir()
        write_atomic(file, {"status": "running", "step": 0})
    await asyncio.sleep(0.5)  # the server sees the new jobs
    run_for = final_step / phase.rate + 1
    deadline = time.time() + 120 + run_for
    loads = []
    for w in range(LOADS):
        mine = [files[i % jobs].parent.name for i in range(w, clients, LOADS)]
        spec = {"base": server.ws, "jobs": mine, "final_step": final_step, "deadline": deadline}
        loads.append(await _spawn("--fanout-load", json.dumps(spec)))
    for process in loads:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 120)
        assert line.strip() == b"ready", line
    spec = {"files": [str(f) for f in files], "shape": phase.shape, "rate": phase.rate}
    server_cpu, began = cpu_seconds(server.process.pid), time.monotonic()
    writing = await _spawn("--fanout-writer", json.dumps({**spec, "ticks": final_step}))
    written = await _last_json(writing, run_for + 60)
    results = [await _last_json(p, deadline - time.time() + 30) for p in loads]
    wall = time.monotonic() - began
    server_cpu = cpu_seconds(server.process.pid) - server_cpu
    ordinary, terminal, close_after = [], [], []
    lost = errors = bad_close = 0
    for result in results:
        for client in result["clients"]:
            if client.get("error"):
                errors += 1
                continue
            for step, ms in latencies_by_step(written["written"][client["job"]], client["got"]):
                (terminal if step == final_step else ordinary).append(ms)
            lost += not client["final"]
            if client["close_ms"] is not None:
                close_after.append(client["close_ms"])
            bad_close += client["close"] != 1000
    return {
        "shape": phase.shape,
        "rate_hz": phase.rate,
        "server": "seed's 2-s loop" if phase.legacy else "sidecar",
        "ticks": final_step,
        "latency_ms": percentiles(ordinary + terminal),
        "ordinary_tick_ms": percentiles(ordinary),
        "terminal_tick_ms": percentiles(terminal),
        # From the final state to the server's close, as the client saw them (closes are paced).
        "close_after_final_ms": percentiles(close_after),
        "server_event_to_send": None if phase.legacy else await _event_to_send(server),
        "final_lost": lost,
        "errors": errors,
        "close_not_1000": bad_close,
        "window_seconds": wall,
        "server_cpu_percent": 100 * server_cpu / wall,
        "load_cpu_percent": 100 * sum(r["cpu_seconds"] for r in results) / wall,
        "writer_cpu_percent": 100 * written["cpu_seconds"] / wall,
        "writer_late_ms": written["late_ms"],
        "server_peak_rss_mb": peak_rss_mb(server.process.pid),
    }


async def run_phases(
    phases: tuple[Phase, ...], *, seconds: float, jobs: int, clients: int, loop: str = "asyncio",
) -> dict[str, Any]:  # fmt: skip
    """Each phase's figures, by name, each on a server of its own."""
    import tempfile

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i, phase in enumerate(phases):
            server = await (start_legacy(root) if phase.legacy else start_sidecar(root, loop=loop))
            try:
                results[phase.name] = await _phase(
                    server, root, f"p{i}-job", phase, seconds=seconds, jobs=jobs, clients=clients
                )
            finally:
                await server.stop()
    return results


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
