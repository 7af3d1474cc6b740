"""Many jobs: 100,000 job directories: start-up, rest, and what a big listing costs others.

The root holds ``jobs`` job directories (default 100,000): ``files`` of them (default 300,
spread evenly) hold a progress.json of a running job last written an hour ago, the rest are
empty directories (pending jobs: the shape of a training server's root full of queued or
abandoned jobs, and of the probe that found the problem). The shipped sidecar runs on it as a
subprocess, at its defaults. Reported: the time from launch to ready (the first ``/healthz``
200 that counts every job); its memory (RSS) and CPU at rest over ``rest_seconds``, after a
settling pause; then, while a probe in a process of its own asks ``GET /healthz`` on a fresh
connection every 5 ms, the worst round trip the probe sees (the stall another client suffers)
during: a quiet stretch (the reference), ``GET /api/jobs`` of every job, every page of
``GET /api/jobs?limit=1000`` (an old sidecar ignores the parameter and answers all at once),
one dashboard connecting to ``/ws/jobs`` until it holds its snapshot, and three at once. The
clients are plain sockets (HTTP) and picows (WebSocket), not aiohttp.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, cast

from benchmarks.common import (
    BENCH,
    CpuMeter,
    Server,
    peak_rss_mb,
    percentiles,
    spawn,
    table,
    verdict,
)

JOBS = 100_000
FILES = 300
PROBE_PAUSE = 0.005
READY_TARGET_S = 10.0
CPU_TARGET = 2.0
RSS_TARGET_MB = 300.0
STALL_TARGET_MS = 50.0
PAGE = 1000


def make_root(root: Path, jobs: int, files: int) -> None:
    """``jobs`` job directories, ``files`` of them (spread evenly) with a running job's
    progress.json written an hour ago (past the stall rule: at rest)."""
    hour_ago = time.time() - 3600
    every = max(1, jobs // max(1, files))
    for j in range(jobs):
        job_dir = root / f"job{j:06d}"
        os.mkdir(job_dir)
        if j % every == 0 and j // every < files:
            file = job_dir / "progress.json"
            file.write_text(
                json.dumps(
                    {
                        "status": "running",
                        "current_step": j,
                        "total_steps": 1_000_000,
                        "progress": j / 10_000,
                        "loss": 0.25,
                        "eta_seconds": 1200,
                    }
                )
            )
            os.utime(file, (hour_ago, hour_ago))


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _start_sidecar(root: Path) -> Server:
    """The shipped sidecar at its defaults (``common.start_sidecar``'s, with a longer wait for
    its first line: an old one took 20 s to start on 100,000 jobs)."""
    return await spawn(
        sys.executable, "-m", "sidecar", "--root", str(root), "--port", "0",
        "--log-level", "warning", ready_timeout=600,
    )  # fmt: skip


# Plain-socket HTTP.


async def http_get(host: str, port: int, target: str, *, timeout: float = 120) -> tuple[int, bytes]:
    """One GET on a fresh connection; the status and the body (chunked or not)."""
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    try:
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")
            raw = await reader.read()
    finally:
        writer.close()
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        return status, _dechunk(raw)
    return status, raw


def _dechunk(raw: bytes) -> bytes:
    parts: list[bytes] = []
    at = 0
    while True:
        end = raw.index(b"\r\n", at)
        size = int(raw[at:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(parts)
        parts.append(raw[end + 2 : end + 2 + size])
        at = end + 2 + size + 2


# The probe: its own process, blocking sockets, one GET /healthz every 5 ms.


def probe(spec: str) -> None:
    """The probe process (``bench.py --many-jobs-probe SPEC``): asks ``/healthz`` on a fresh
    connection every ``pause`` s until a line comes on stdin, then prints one JSON line: each
    request's start (POSIX time) and round trip (ms)."""
    options = json.loads(spec)
    host, port, pause = options["host"], options["port"], options["pause"]
    stop = threading.Event()

    def wait_for_stop() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    samples: list[tuple[float, float]] = []
    errors = 0
    print("ready", flush=True)
    while not stop.is_set():
        began, began_mono = time.time(), time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=60) as s:
                s.sendall(request.encode())
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
            if not answer.startswith(b"HTTP/1.1 200"):
                errors += 1
        except OSError:
            errors += 1
        samples.append((began, (time.monotonic() - began_mono) * 1000))
        time.sleep(pause)
    print(json.dumps({"samples": samples, "errors": errors}), flush=True)


class Probe:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.windows: dict[str, list[tuple[float, float]]] = {}

    @classmethod
    async def start(cls, host: str, port: int) -> Probe:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(BENCH),
            "--many-jobs-probe",
            json.dumps({"host": host, "port": port, "pause": PROBE_PAUSE}),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        assert (await asyncio.wait_for(process.stdout.readline(), 30)).strip() == b"ready"
        return cls(process)

    def mark(self, name: str, began: float, ended: float) -> None:
        self.windows.setdefault(name, []).append((began, ended))

    async def stop(self) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(b"stop\n")
        await self.process.stdin.drain()
        out = await asyncio.wait_for(self.process.stdout.read(), 60)
        await self.process.wait()
        return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def round_trips(samples: list[list[float]], began: float, ended: float) -> list[float]:
    """The probe's round trips (ms) of the requests that overlap ``[began, ended]``."""
    return [rtt for at, rtt in samples if at <= ended and at + rtt / 1000 >= began]


# The heavy clients.


async def list_all(host: str, port: int) -> dict[str, Any]:
    began = time.time()
    status, body = await http_get(host, port, "/api/jobs")
    ended = time.time()
    jobs = len(json.loads(body)["jobs"]) if status == 200 else 0
    return {"began": began, "ended": ended, "status": status, "bytes": len(body), "jobs": jobs}


async def list_pages(host: str, port: int) -> dict[str, Any]:
    began = time.time()
    seen: list[str] = []
    pages = 0
    target = f"/api/jobs?limit={PAGE}"
    while True:
        status, body = await http_get(host, port, target)
        pages += 1
        answer = json.loads(body) if status == 200 else {}
        seen += [job["job_id"] for job in answer.get("jobs", [])]
        if not answer.get("next"):
            break
        target = f"/api/jobs?limit={PAGE}&after={answer['next']}"
    ended = time.time()
    return {
        "began": began,
        "ended": ended,
        "pages": pages,
        "jobs": len(seen),
        "distinct": len(set(seen)),
        "sorted": seen == sorted(seen),
    }


async def dashboards(ws_url: str, count: int) -> dict[str, Any]:
    """``count`` clients of ``/ws/jobs`` connecting at once; each until it holds its snapshot."""
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    loop = asyncio.get_running_loop()

    class Dashboard(WSListener):
        def __init__(self) -> None:
            self.parts: list[bytes] = []
            # When the snapshot was whole, and its bytes (parsed once the window is over: the
            # parse would take this machine's CPU from the sidecar and the probe).
            self.snapshot: asyncio.Future[tuple[float, bytes]] = loop.create_future()

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type in (WSMsgType.TEXT, WSMsgType.CONTINUATION):
                self.parts.append(frame.get_payload_as_bytes())
                if frame.fin and not self.snapshot.done():
                    self.snapshot.set_result((time.time(), b"".join(self.parts)))
                    self.parts = []

    began = time.time()
    connected = await asyncio.gather(
        *(ws_connect(Dashboard, ws_url, max_frame_size=1 << 30) for _ in range(count))
    )
    listeners = [cast(Dashboard, d) for _t, d in connected]
    got = await asyncio.wait_for(asyncio.gather(*(d.snapshot for d in listeners)), 300)
    ended = time.time()
    for transport, _d in connected:
        transport.send_close()
        transport.disconnect()
    return {
        "began": began,
        "ended": ended,
        "snapshot_seconds": [at - began for at, _m in got],
        "jobs": [len(json.loads(message)["jobs"]) for _at, message in got],
    }


async def run(
    *,
    jobs: int = JOBS,
    files: int = FILES,
    rest_seconds: float = 30,
    settle_seconds: float = 15,
    rounds: int = 3,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        made = time.monotonic()
        await asyncio.to_thread(make_root, root, jobs, files)
        made_seconds = time.monotonic() - made
        launched = time.monotonic()
        sidecar = await _start_sidecar(root)
        listening = time.monotonic() - launched
        host, port = sidecar.url.removeprefix("http://").split(":")
        port_n = int(port)
        pid = sidecar.process.pid
        try:
            while True:
                status, body = await http_get(host, port_n, "/healthz")
                if status == 200 and json.loads(body)["jobs"] == jobs:
                    break
                await asyncio.sleep(0.05)
            ready = time.monotonic() - launched
            await asyncio.sleep(settle_seconds)  # past the scans and the watch set up at start
            rss_rest = _rss_mb(pid)
            meter = CpuMeter(pid)
            await asyncio.sleep(rest_seconds)
            cpu_rest = meter.percent()

            probe = await Probe.start(host, port_n)
            began = time.time()
            await asyncio.sleep(3)
            probe.mark("quiet", began, time.time())
            listings: list[dict[str, Any]] = []
            paged: list[dict[str, Any]] = []
            one: list[dict[str, Any]] = []
            three: list[dict[str, Any]] = []
            for _ in range(rounds):
                listing = await list_all(host, port_n)
                probe.mark("GET /api/jobs", listing["began"], listing["ended"])
                listings.append(listing)
                await asyncio.sleep(1)
            pages = await list_pages(host, port_n)
            probe.mark(f"GET /api/jobs?limit={PAGE}, every page", pages["began"], pages["ended"])
            paged.append(pages)
            await asyncio.sleep(1)
            for count, results in ((1, one), (3, three)):
                for _ in range(max(1, rounds - 1)):
                    result = await dashboards(f"{sidecar.ws}/ws/jobs", count)
                    name = "1 dashboard on /ws/jobs" if count == 1 else "3 dashboards at once"
                    probe.mark(name, result["began"], result["ended"])
                    results.append(result)
                    await asyncio.sleep(1)
            probed = await probe.stop()
            await asyncio.sleep(5)
            rss_after = _rss_mb(pid)
            rss_peak = peak_rss_mb(pid)
        finally:
            await sidecar.stop()
    stalls: dict[str, Any] = {}
    for name, windows in probe.windows.items():
        by_round = [round_trips(probed["samples"], b, e) for b, e in windows]
        every = [rtt for trips in by_round for rtt in trips]
        stalls[name] = {
            "worst_ms": max(every, default=float("nan")),
            "per_round_worst_ms": [max(trips, default=float("nan")) for trips in by_round],
            "round_trip_ms": percentiles(every),
            f"over_{STALL_TARGET_MS:g}_ms": sum(rtt > STALL_TARGET_MS for rtt in every),
            "probe_requests": len(every),
            "seconds": [e - b for b, e in windows],
        }
    rtts = [rtt for _at, rtt in probed["samples"]]
    heavy = [name for name in stalls if name != "quiet"]
    # A window no probe request overlapped (a very short one, with --quick) shows nothing.
    shown = {n: stalls[n]["worst_ms"] for n in heavy if stalls[n]["probe_requests"]}
    listing_stall = max((v for n, v in shown.items() if n.startswith("GET")), default=0.0)
    ws_stall = max((v for n, v in shown.items() if not n.startswith("GET")), default=0.0)
    return {
        "scenario": "many_jobs",
        "jobs": jobs,
        "files": files,
        "root": f"{jobs:,} job directories: {files} with a running job's progress.json written "
        "an hour ago, the rest empty (pending)",
        "sidecar flags": "defaults",
        "make_root_seconds": made_seconds,
        "listening_seconds": listening,
        "ready_seconds": ready,
        "rest": {
            "settle_seconds": settle_seconds,
            "seconds": rest_seconds,
            "rss_mb": rss_rest,
            "cpu_percent": cpu_rest,
        },
        "probe": {
            "what": "GET /healthz on a fresh connection, every 5 ms, from its own process",
            "requests": len(rtts),
            "errors": probed["errors"],
            "p50_ms": statistics.median(rtts) if rtts else float("nan"),
        },
        "stall_ms": stalls,
        "listings": {
            "GET /api/jobs": [
                {k: v for k, v in listing.items() if k not in ("began", "ended")}
                | {"seconds": listing["ended"] - listing["began"]}
                for listing in listings
            ],
            f"GET /api/jobs?limit={PAGE}, every page": [
                {k: v for k, v in p.items() if k not in ("began", "ended")}
                | {"seconds": p["ended"] - p["began"]}
                for p in paged
            ],
            "1 dashboard": [
                {"snapshot_seconds": r["snapshot_seconds"], "jobs": r["jobs"]} for r in one
            ],
            "3 dashboards": [
                {"snapshot_seconds": r["snapshot_seconds"], "jobs": r["jobs"]} for r in three
            ],
        },
        "rss_after_clients_mb": rss_after,
        "rss_peak_mb": rss_peak,
        "targets": {
            f"ready <= {READY_TARGET_S:g} s": verdict(ready, READY_TARGET_S),
            f"CPU at rest <= {CPU_TARGET:g} % of a core": verdict(cpu_rest, CPU_TARGET),
            f"RSS at rest <= {RSS_TARGET_MB:g} MB": verdict(rss_rest, RSS_TARGET_MB),
            f"stall during /api/jobs <= {STALL_TARGET_MS:g} ms": verdict(
                listing_stall, STALL_TARGET_MS
            ),
            f"stall during /ws/jobs <= {STALL_TARGET_MS:g} ms": verdict(ws_stall, STALL_TARGET_MS),
            "every job listed, every page, every snapshot": verdict(
                sum(
                    [listing["jobs"] != jobs for listing in listings]
                    + [p["distinct"] != jobs or not p["sorted"] for p in paged]
                    + [n != jobs for r in one + three for n in r["jobs"]]
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
