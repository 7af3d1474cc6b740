"""Cluster: node sidecars and a gateway over one redis-server; added latency, 1,000 clients, a Redis restart, Redis' throughput.

Every part is a real process: a redis-server (no persistence), sidecars with --redis (nodes,
each with a jobs root of its own; a gateway without one), the writer (this process, replacing
progress files atomically like a trainer) and the load clients, in worker processes of their
own on the `websockets` library (not the sidecar's aiohttp). Every write carries its step; a
client's latency for a write is the time from the rename until it holds that step or a later
one (a coalesced state is as late as the one that replaced it).

1. Added latency: Redis, node A, node B and a gateway. One job on A written at 20 Hz, then one
   at 2 Hz; a client follows each on A (direct), on B (a replica) and on the gateway. Added =
   gateway minus A, as a difference of percentiles and write by write.
2. Scale: 3 nodes x 100 jobs, each written at 2 Hz on a phase of its own; 1,000 clients on one
   gateway, over the 300 jobs, in 4 worker processes; the last write of each job `completed`.
   Latency, writes lost, the CPU of every process (/proc/<pid>/stat), Redis' memory and stream.
3. Recovery: every job of (2) completed; redis-server killed and a new, empty one started on
   the same port. How long until Redis holds every final state again, until the gateway reads
   the bus again, and until a gateway started then holds them all; whether the first gateway
   ever served less than the final state (polled every 50 ms, and a client per job).
4. Redis alone: changes/s that one redis-server takes from redis-py publishers writing what a
   node writes for a change (XADD, SET, 2 EXPIRE, in MULTI/EXEC), with the real message size.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from benchmarks.common import (
    BENCH,
    URL_LINE,
    CpuMeter,
    Server,
    peak_rss_mb,
    percentiles,
    table,
    verdict,
    write_atomic,
)
from benchmarks.fanout import _event_to_send

if TYPE_CHECKING:  # Redis' client is the cluster extra's: imported when the scenario runs
    import redis.asyncio as aioredis

ADDED_P99_TARGET_MS = 10.0
# Every load client connects from 127.0.0.1, many to one job: lift the per-job, per-address
# and total limits (defaults 10, 5 and 1,000) out of the way.
LIMITS = ("--max-clients-per-job", "10000", "--max-clients-per-address", "10000")
LIMITS += ("--max-clients", "10000")
EXPECTED_LOG = re.compile(r"bus down|bus up again|bus unreachable")
"""Warnings a Redis restart is expected to cause (recovery); any other is reported."""


# -- processes --------------------------------------------------------------------------------


class RedisProcess:
    """One redis-server on 127.0.0.1, no persistence; ``kill`` as a crash, ``start`` again
    brings up a new, empty one on the same port."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("--cluster needs redis-server (apt-get install redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.port = port or _free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        from redis.exceptions import RedisError

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.workdir),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        client = self.client()
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    await client.ping()
                    return
                except (RedisError, OSError):
                    if self.process.returncode is not None or time.monotonic() > deadline:
                        raise SystemExit(f"redis-server did not start on {self.port}") from None
                    await asyncio.sleep(0.005)
        finally:
            await client.aclose()

    def client(self) -> aioredis.Redis:
        import redis.asyncio

        return redis.asyncio.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Sidecar(Server):
    name: str
    log: Path


async def _sidecar(logs: Path, name: str, redis_url: str, root: Path | None, node: str) -> Sidecar:
    """A sidecar with --redis (a node with ``root``, a gateway without), its log in a file."""
    where = ["--root", str(root)] if root is not None else []
    log = logs / f"{name}.log"
    with open(log, "ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sidecar", *where, "--redis", redis_url, "--node", node,
            "--port", "0", "--log-level", "info", *LIMITS,
            stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
    match = URL_LINE.search(line)
    if not match:
        tail = log.read_text(errors="replace").splitlines()[-10:]
        raise SystemExit(
            f"sidecar {name} did not start: {line!r}; its log ends:\n" + "\n".join(tail)
        )
    return Sidecar(process, match.group(1), name, log)


async def _worker(spec: dict[str, Any]) -> asyncio.subprocess.Process:
    """A load process (``bench.py --cluster-worker SPEC_FILE``, which it deletes); it prints
    'ready' when set."""
    fd, path = tempfile.mkstemp(prefix="cluster-worker-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(spec, f)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH), "--cluster-worker", path,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        limit=1 << 26,
    )  # fmt: skip
    return process


async def _ready(process: asyncio.subprocess.Process, timeout: float = 180) -> None:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout)
    assert line.strip() == b"ready", line


async def _results(
    processes: list[asyncio.subprocess.Process], grace: float
) -> list[dict[str, Any]]:
    """Each worker's JSON line; those not done within ``grace`` seconds are told to stop."""
    reads = [asyncio.ensure_future(p.stdout.read()) for p in processes if p.stdout is not None]
    await asyncio.wait(reads, timeout=grace)
    for process, read in zip(processes, reads, strict=True):
        if not read.done() and process.stdin is not None:
            process.stdin.write(b"stop\n")
            with contextlib.suppress(ConnectionError):
                await process.stdin.drain()
    outs = await asyncio.wait_for(asyncio.gather(*reads), 120)
    for process in processes:
        await process.wait()
    return [json.loads(out.decode().strip().splitlines()[-1]) for out in outs]


# -- load workers (run in processes of their own) ---------------------------------------------


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386, as a browser client does it (written here: the load owes the sidecar nothing)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


async def _follow_all(targets: list[list[str]]) -> None:
    """WebSocket clients, one per (label, url, job); 'ready' once each holds its snapshot, then
    one JSON line of what each received, when all are closed (or 'stop' comes on stdin)."""
    import websockets

    records: list[dict[str, Any]] = []
    ready = asyncio.Event()
    started = [0]

    async def follow(label: str, url: str, job: str) -> None:
        got: list[tuple[float, int]] = []
        record: dict[str, Any] = {"label": label, "job": job, "got": got, "error": None}
        record.update(backwards=0, seq_errors=0, epochs=0, close_code=None, final=None)
        records.append(record)
        state: Any = None
        last_step, last_epoch, last_seq = -1, None, -1
        try:
            async with websockets.connect(
                url, max_size=None, open_timeout=120, proxy=None, compression=None
            ) as ws:
                try:
                    async for raw in ws:
                        now = time.time()
                        data = json.loads(raw)
                        kind, epoch, seq = data.pop("type"), data.pop("epoch"), data.pop("seq")
                        if epoch != last_epoch:
                            record["epochs"] += 1
                        elif seq <= last_seq:
                            record["seq_errors"] += 1
                        last_epoch, last_seq = epoch, seq
                        state = data if kind == "snapshot" else _merge(state, data)
                        step = state.get("current_step")
                        if isinstance(step, int):
                            if step < last_step:
                                record["backwards"] += 1
                            last_step = step
                            if "current_step" in data:
                                got.append((round(now, 6), step))
                        if kind == "snapshot" and not ready.is_set():
                            started[0] += 1
                            if started[0] == len(targets):
                                ready.set()
                finally:
                    record["close_code"] = ws.close_code
        except Exception as e:  # any failure is counted, not raised
            record["error"] = f"{type(e).__name__}: {e}"
            started[0] += 1
            if started[0] >= len(targets):
                ready.set()
        if isinstance(state, dict):
            record["final"] = {k: state.get(k) for k in ("status", "current_step", "complete")}

    tasks = [asyncio.create_task(follow(*target)) for target in targets]
    await asyncio.wait_for(ready.wait(), 180)
    print("ready", flush=True)
    stop = asyncio.ensure_future(asyncio.to_thread(sys.stdin.readline))
    everyone = asyncio.ensure_future(asyncio.gather(*tasks))
    await asyncio.wait([stop, everyone], return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(records), flush=True)
    os._exit(0)  # the stdin thread may still be reading


def _publish(spec: dict[str, Any]) -> None:
    """What a node writes for each change of a job, ``batch`` changes per MULTI/EXEC, as fast
    as it goes for ``seconds`` (after 'go' on stdin); prints how many."""
    import redis

    from sidecar.bus import wire
    from sidecar.bus.defaults import RUNNING_TTL, STREAM_LENGTH

    client = redis.Redis.from_url(spec["url"])
    message = spec["message"].encode()
    jobs = [f"job{i:03d}" for i in range(spec["jobs"])]
    node = f"bench{spec['index']}"
    print("ready", flush=True)
    sys.stdin.readline()
    changes, began = 0, time.monotonic()
    deadline = began + spec["seconds"]
    while time.monotonic() < deadline:
        with client.pipeline(transaction=True) as pipe:
            for _ in range(spec["batch"]):
                job = jobs[changes % len(jobs)]
                changes += 1
                pipe.xadd(wire.CHANGES, {wire.FIELD: message}, maxlen=STREAM_LENGTH)
                pipe.set(wire.job_key(node, job), message, ex=RUNNING_TTL)
                pipe.expire(wire.history_key(node, job), RUNNING_TTL)
                pipe.expire(wire.history_mark_key(node, job), RUNNING_TTL)
            pipe.execute()
    print(json.dumps({"changes": changes, "seconds": time.monotonic() - began}), flush=True)


async def _read_stream(spec: dict[str, Any]) -> None:
    """``readers`` clients following the stream as every sidecar does (XREAD BLOCK), until
    'stop' on stdin; prints the entries each read."""
    from sidecar.bus import wire

    counts = [0] * spec["readers"]

    async def read(index: int) -> None:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(spec["url"])
        last: Any = "$"
        while True:
            reply: Any = await client.xread({wire.CHANGES: last}, count=1000, block=1000)
            for _stream, entries in reply or ():
                counts[index] += len(entries)
                last = entries[-1][0]

    tasks = [asyncio.create_task(read(i)) for i in range(spec["readers"])]
    await asyncio.sleep(0.3)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"read": counts}), flush=True)


def worker(spec_file: str) -> None:
    path = Path(spec_file)
    spec = json.loads(path.read_text())
    path.unlink()
    if spec["kind"] == "clients":
        asyncio.run(_follow_all(spec["targets"]))
    elif spec["kind"] == "publish":
        _publish(spec)
    elif spec["kind"] == "read":
        asyncio.run(_read_stream(spec))
    else:
        raise SystemExit(f"unknown worker {spec['kind']!r}")


# -- measuring --------------------------------------------------------------------------------


def _document(step: int, final: int) -> dict[str, Any]:
    return {
        "status": "completed" if step == final else "running",
        "current_step": step,
        "total_steps": final,
        "progress": round(100 * step / final, 2),
        "loss": round(2.5 / (1 + 0.1 * step), 6),
        "written_at": time.time(),
    }


def _per_write(written: dict[int, float], got: list[list[float]]) -> dict[int, float]:
    """For each write, ms until the client held that step or a later one (none: never)."""
    delays, index = {}, 0
    for step in sorted(written):
        while index < len(got) and got[index][1] < step:
            index += 1
        if index == len(got):
            break
        delays[step] = (got[index][0] - written[step]) * 1000
    return delays


async def _get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
        return await response.json()


async def _wait_jobs(url: str, count: int, final: int | None = None, timeout: float = 60) -> None:
    """Until ``url``'s /api/jobs lists ``count`` jobs (all at ``final``, completed, if set)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            jobs = (await _get_json(session, f"{url}/api/jobs"))["jobs"]
            if len(jobs) >= count and (final is None or _all_final(jobs, count, final)):
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} lists {len(jobs)} jobs, not {count}, after {timeout} s")
            await asyncio.sleep(0.05)


def _all_final(jobs: list[dict[str, Any]], count: int, final: int) -> bool:
    done = [j for j in jobs if j.get("complete") and j.get("current_step") == final]
    return len(done) == count


def _log_lines(sidecars: list[Sidecar]) -> dict[str, Any]:
    """Each sidecar's warnings and errors: those a Redis restart explains, and the others."""
    report: dict[str, Any] = {}
    for sidecar in sidecars:
        lines = sidecar.log.read_text(errors="replace").splitlines()
        bad = [ln for ln in lines if " WARNING " in ln or " ERROR " in ln or "Traceback" in ln]
        other = [ln for ln in bad if not EXPECTED_LOG.search(ln)]
        report[sidecar.name] = {
            "expected": len(bad) - len(other),
            "unexpected": len(other),
            "unexpected_lines": other[:20],
        }
    return report


async def _stop(sidecars: list[Sidecar]) -> None:
    await asyncio.gather(*(s.stop() for s in sidecars), return_exceptions=True)


# -- 1. added latency -------------------------------------------------------------------------


async def _write_job(file: Path, rate: float, seconds: float) -> dict[int, float]:
    final = max(2, int(rate * seconds))
    written: dict[int, float] = {}
    began = time.monotonic()
    for step in range(1, final + 1):
        written[step] = write_atomic(file, _document(step, final))
        await asyncio.sleep(max(0.0, began + step / rate - time.monotonic()))
    return written


async def _added_latency(
    tmp: Path, logs: list[Sidecar], rates: list[tuple[float, float]]
) -> dict[str, Any]:
    redis_server = RedisProcess(tmp / "redis-latency")
    await redis_server.start()
    roots = {node: tmp / f"latency-{node}" for node in ("a", "b")}
    jobs = {f"lat{rate:g}hz": (rate, seconds) for rate, seconds in rates}
    for job in jobs:
        write_atomic(_progress(roots["a"], job), _document(0, 1_000_000))
    write_atomic(_progress(roots["b"], "idle-on-b"), _document(0, 1_000_000))
    sidecars = list(
        await asyncio.gather(
            _sidecar(tmp, "latency-node-a", redis_server.url, roots["a"], "a"),
            _sidecar(tmp, "latency-node-b", redis_server.url, roots["b"], "b"),
            _sidecar(tmp, "latency-gateway", redis_server.url, None, "gateway"),
        )
    )
    logs += sidecars
    labels = {"node A (direct)": sidecars[0], "node B (replica)": sidecars[1]}
    labels["gateway"] = sidecars[2]
    try:
        for sidecar in sidecars:
            await _wait_jobs(sidecar.url, len(jobs) + 1)
        targets = [
            [label, f"{s.ws}/ws/training/{job}", job] for job in jobs for label, s in labels.items()
        ]
        process = await _worker({"kind": "clients", "targets": targets})
        await _ready(process)
        await asyncio.sleep(1)
        written = {}
        load = [_load()]
        for job, (rate, seconds) in jobs.items():
            written[job] = await _write_job(_progress(roots["a"], job), rate, seconds)
        (records,) = await _results([process], grace=10)
        load.append(_load())
    finally:
        await _stop(sidecars)
        await redis_server.kill()
    by_rate: dict[str, Any] = {}
    for job, (rate, seconds) in jobs.items():
        delays = {
            r["label"]: _per_write(written[job], r["got"]) for r in records if r["job"] == job
        }
        figures = {label: percentiles(list(d.values())) for label, d in delays.items()}
        node, gateway = delays["node A (direct)"], delays["gateway"]
        pairwise = [gateway[s] - node[s] for s in node.keys() & gateway.keys()]
        by_rate[f"{rate:g} Hz"] = {
            "rate_hz": rate,
            "seconds": seconds,
            "writes": len(written[job]),
            "results_ms": figures,
            "added_ms": {
                q: figures["gateway"][q] - figures["node A (direct)"][q] for q in ("p50", "p99")
            },
            "added_per_write_ms": percentiles(pairwise),
            "missed": {
                r["label"]: len(written[job]) - len(delays[r["label"]])
                for r in records
                if r["job"] == job
            },
            "samples_ms": {label: list(d.values()) for label, d in delays.items()},
            "client_errors": [r["error"] for r in records if r["job"] == job and r["error"]],
        }
    return {"rates": by_rate, "load_average": load}


def _load() -> float:
    """The machine's 1-minute load average: how busy the rest of it was."""
    return round(os.getloadavg()[0], 2)


def _progress(root: Path, job: str) -> Path:
    path = root / job / "progress.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# -- 2. scale ---------------------------------------------------------------------------------


async def _redis_figures(client: aioredis.Redis) -> dict[str, Any]:
    from sidecar.bus import wire

    memory: Any = await client.info("memory")
    return {
        "used_memory_mb": memory["used_memory"] / 2**20,
        "used_memory_rss_mb": memory["used_memory_rss"] / 2**20,
        "stream_length": await client.xlen(wire.CHANGES),
        "keys": await client.dbsize(),
    }


async def _commands(client: aioredis.Redis) -> dict[str, dict[str, int]]:
    """Redis' count of calls and microseconds per command so far (INFO commandstats)."""
    stats: Any = await client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): {"calls": int(v["calls"]), "usec": int(v["usec"])}
        for name, v in stats.items()
    }


def _commands_since(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], changes: float
) -> dict[str, dict[str, float]]:
    """Calls and Redis microseconds per change of each command, between two readings."""
    out = {}
    for name, now in sorted(after.items()):
        then = before.get(name, {"calls": 0, "usec": 0})
        calls = now["calls"] - then["calls"]
        if calls:
            out[name] = {
                "calls_per_change": calls / changes,
                "usec_per_change": (now["usec"] - then["usec"]) / changes,
            }
    return out


async def _scale_and_recovery(
    tmp: Path,
    logs: list[Sidecar],
    *,
    nodes: int,
    jobs_per_node: int,
    clients: int,
    workers: int,
    rate: float,
    seconds: float,
) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    from sidecar.bus import wire

    redis_server = RedisProcess(tmp / "redis-scale")
    await redis_server.start()
    redis_client = redis_server.client()
    empty = await _redis_figures(redis_client)
    final = max(2, int(rate * seconds))
    roots = [tmp / f"scale-n{n}" for n in range(nodes)]
    files = {
        f"n{n}-job{j:03d}": _progress(roots[n], f"n{n}-job{j:03d}")
        for n in range(nodes)
        for j in range(jobs_per_node)
    }
    for file in files.values():
        write_atomic(file, _document(0, final))
    node_sidecars = list(
        await asyncio.gather(
            *(
                _sidecar(tmp, f"scale-node-n{n}", redis_server.url, roots[n], f"n{n}")
                for n in range(nodes)
            )
        )
    )
    gateway = await _sidecar(tmp, "scale-gateway", redis_server.url, None, "gateway")
    sidecars = [*node_sidecars, gateway]
    logs += sidecars
    processes: list[asyncio.subprocess.Process] = []
    try:
        await _wait_jobs(gateway.url, len(files))
        job_ids = sorted(files)
        targets = [
            ["gateway", f"{gateway.ws}/ws/training/{job_ids[c % len(job_ids)]}", ""]
            for c in range(clients)
        ]
        for target in targets:
            target[2] = target[1].rsplit("/", 1)[1]
        share = -(-clients // workers)
        for w in range(workers):
            chunk = targets[w * share : (w + 1) * share]
            if chunk:
                processes.append(await _worker({"kind": "clients", "targets": chunk}))
        await asyncio.gather(*(_ready(p) for p in processes))
        await asyncio.sleep(1)
        meters = {
            "gateway": CpuMeter(gateway.process.pid),
            "redis": CpuMeter(redis_server.pid),
            **{s.name.removeprefix("scale-"): CpuMeter(s.process.pid) for s in node_sidecars},
            "load clients": [CpuMeter(p.pid) for p in processes],
            "writer": CpuMeter(os.getpid()),
        }
        commands_before = await _commands(redis_client)
        writes: list[tuple[float, str, int]] = []
        for index, job in enumerate(job_ids):
            offset = index / len(job_ids) / rate  # each job on a phase of its own
            writes += [(offset + (step - 1) / rate, job, step) for step in range(1, final + 1)]
        writes.sort()
        written: dict[str, dict[int, float]] = {job: {} for job in job_ids}
        cpu: dict[str, float] = {}
        redis_at_scale: dict[str, Any] = {}
        late: list[float] = []
        sample_message = None
        load = [_load()]
        began = time.monotonic()
        for due, job, step in writes:
            if step == final and not cpu:  # the clients leave at the final state
                steady = time.monotonic() - began
                for name, meter in meters.items():
                    if isinstance(meter, list):
                        cpu[name] = sum(m.percent() for m in meter)
                    else:
                        cpu[name] = meter.percent()
                redis_at_scale = await _redis_figures(redis_client)
                commands_after = await _commands(redis_client)
                sample_message = await redis_client.get(wire.job_key(job.split("-")[0], job))
            wait = began + due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            late.append(1000 * (time.monotonic() - began - due))
            written[job][step] = write_atomic(files[job], _document(step, final))
        writing = time.monotonic() - began
        load.append(_load())
        records = [r for batch in await _results(processes, grace=15) for r in batch]
        health = await _health(gateway.url)
        inside = await _event_to_send(gateway)
        await _wait_jobs(gateway.url, len(files), final, timeout=30)
        recovery = await _recovery(tmp, logs, redis_server, gateway, job_ids, final)
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
        await _stop(sidecars)
        await redis_client.aclose()
        await redis_server.kill()

    samples: list[float] = []
    lost = coalesced = 0
    for r in records:
        delays = _per_write(written[r["job"]], r["got"])
        samples += delays.values()
        lost += len(written[r["job"]]) - len(delays)
        coalesced += len(delays) - len({step for _, step in r["got"]} & delays.keys())
    final_lost = [
        r
        for r in records
        if r["final"] != {"status": "completed", "current_step": final, "complete": True}
    ]
    changes = len(writes) * steady / writing
    scale = {
        "nodes": nodes,
        "jobs": len(files),
        "clients": clients,
        "load_processes": len(processes),
        "rate_hz": rate,
        "seconds": seconds,
        "writes": len(writes),
        "writes_per_second": len(writes) / writing,
        "writer_late_ms": percentiles(late),
        "load_average": load,
        "latency_ms": percentiles(samples),
        "deliveries_expected": sum(len(written[r["job"]]) for r in records),
        "writes_lost": lost,
        "writes_coalesced": coalesced,
        "final_states_lost": len(final_lost),
        "final_states_lost_examples": [
            {k: r[k] for k in ("job", "final", "close_code", "error")} for r in final_lost[:5]
        ],
        "client_errors": sum(bool(r["error"]) for r in records),
        "close_codes": _count(r["close_code"] for r in records),
        "states_backwards": sum(r["backwards"] for r in records),
        "seq_errors": sum(r["seq_errors"] for r in records),
        "cpu_percent": cpu,
        "cpu_seconds_measured": steady,
        "gateway_peak_rss_mb": None,
        "gateway_event_to_send": inside,
        "gateway_health": health,
        "redis": redis_at_scale,
        "redis_empty": empty,
        "redis_commands_per_change": _commands_since(commands_before, commands_after, changes),
        "redis_cpu_us_per_change": 1e6 * cpu["redis"] / 100 * steady / max(1.0, changes),
    }
    scale["gateway_peak_rss_mb"] = recovery.pop("gateway_peak_rss_mb")
    return scale, recovery, sample_message or b""


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return counts


async def _health(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        health: dict[str, Any] = await _get_json(session, f"{url}/healthz")
        return health


# -- 3. recovery ------------------------------------------------------------------------------


async def _recovery(
    tmp: Path,
    logs: list[Sidecar],
    redis_server: RedisProcess,
    gateway: Sidecar,
    job_ids: list[str],
    final: int,
) -> dict[str, Any]:
    """Redis killed and started empty, every job completed: how long until all is back."""
    from sidecar.bus import wire

    polls: list[dict[str, Any]] = []
    stop = asyncio.Event()

    async def poll(url: str, into: list[dict[str, Any]]) -> None:
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                at = time.monotonic()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    jobs = (await _get_json(session, f"{url}/api/jobs"))["jobs"]
                    health = await _get_json(session, f"{url}/healthz")
                    short = [
                        j
                        for j in jobs
                        if j.get("complete") is not True or j.get("current_step") != final
                    ]
                    into.append(
                        {
                            "at": at,
                            "jobs": len(jobs),
                            "final": len(jobs) - len(short),
                            "bus": health.get("bus"),
                            "lost_nodes": health.get("lost_nodes"),
                            "examples": short[:3],
                        }
                    )
                await asyncio.sleep(0.05)

    poller = asyncio.create_task(poll(gateway.url, polls))
    await asyncio.sleep(0.5)
    killed = time.monotonic()
    await redis_server.kill()
    await redis_server.start()
    restarted = time.monotonic()
    started = asyncio.create_task(
        _sidecar(tmp, "recovery-new-gateway", redis_server.url, None, "gateway2")
    )
    clients = await _worker(
        {
            "kind": "clients",
            "targets": [["gateway", f"{gateway.ws}/ws/training/{job}", job] for job in job_ids],
        }
    )
    client = redis_server.client()
    refilled = None
    try:
        deadline = restarted + 60
        while time.monotonic() < deadline:
            keys = [k async for k in client.scan_iter(match=wire.JOB_PATTERN, count=1000)]
            values = await client.mget(keys) if keys else []
            done = 0
            for value in values:
                message = json.loads(value) if value else {}
                document = message.get("document", {})
                done += document.get("status") == "completed" and (
                    document.get("current_step") == final
                )
            if done == len(job_ids):
                refilled = time.monotonic() - restarted
                break
            await asyncio.sleep(0.01)
        new_gateway = await started
        logs.append(new_gateway)
        try:
            await _wait_jobs(new_gateway.url, len(job_ids), final, timeout=60)
            new_gateway_all = time.monotonic() - restarted
        finally:
            await new_gateway.stop()
        await asyncio.sleep(1)
        await _ready(clients)
        (records,) = await _results([clients], grace=10)
        await asyncio.sleep(1)
    finally:
        stop.set()
        await poller
        await client.aclose()
    before = [p for p in polls if p["at"] < killed]
    after = [p for p in polls if p["at"] >= killed]
    short = [p for p in after if p["final"] < len(job_ids) or p["jobs"] != len(job_ids)]
    bus_up = next(
        (p["at"] - restarted for p in after if p["at"] >= restarted and p["bus"] == "up"), None
    )
    bad_clients = [
        r
        for r in records
        if r["error"]
        or r["backwards"]
        or r["final"] != {"status": "completed", "current_step": final, "complete": True}
    ]
    return {
        "jobs": len(job_ids),
        "redis_down_seconds": restarted - killed,
        "redis_refilled_seconds": refilled,
        "gateway_bus_up_seconds": bus_up,
        "gateway_polls": len(after),
        "gateway_polls_short_of_final": len(short),
        "gateway_all_final_seconds": max(
            (max(0.0, p["at"] - restarted) for p in short), default=0.0
        ),
        "gateway_short_polls": [
            {"since_restart_s": p["at"] - restarted, **{k: v for k, v in p.items() if k != "at"}}
            for p in short[:10]
        ],
        "gateway_all_final_before": all(p["final"] == len(job_ids) for p in before),
        "gateway_bus_down_seen": any(p["bus"] == "down" for p in after),
        "gateway_lost_nodes_seen": sorted({n for p in after for n in p["lost_nodes"] or ()}),
        "new_gateway_all_final_seconds": new_gateway_all,
        "clients": len(records),
        "clients_not_final": len(bad_clients),
        "clients_backwards": sum(r["backwards"] for r in records),
        "clients_examples": [
            {k: r[k] for k in ("job", "final", "close_code", "error")} for r in bad_clients[:5]
        ],
        "gateway_peak_rss_mb": peak_rss_mb(gateway.process.pid),
    }


# -- 4. Redis alone ---------------------------------------------------------------------------


async def _throughput(
    tmp: Path, message: bytes, seconds: float, variants: list[tuple[str, int, int, int]]
) -> dict[str, Any]:
    """changes/s of ``publishers`` redis-py processes, ``batch`` changes per transaction, with
    ``readers`` stream readers, against a fresh redis-server each time."""
    out: dict[str, Any] = {"message_bytes": len(message), "seconds": seconds, "variants": {}}
    out["load_average"] = [_load()]
    for name, publishers, batch, readers in variants:
        redis_server = RedisProcess(tmp / f"redis-throughput-{len(out['variants'])}")
        await redis_server.start()
        processes = []
        try:
            reader = None
            if readers:
                reader = await _worker(
                    {"kind": "read", "url": redis_server.url, "readers": readers}
                )
                await _ready(reader)
            spec = {"kind": "publish", "url": redis_server.url, "message": message.decode()}
            spec.update(batch=batch, seconds=seconds, jobs=300)
            for index in range(publishers):
                processes.append(await _worker({**spec, "index": index}))
            for process in processes:
                await _ready(process)
            probe = redis_server.client()
            commands_before = await _commands(probe)
            meter = CpuMeter(redis_server.pid)
            for process in processes:
                assert process.stdin is not None
                process.stdin.write(b"go\n")
            results = await _results(processes, grace=seconds + 30)
            redis_cpu = meter.percent()
            commands_after = await _commands(probe)
            figures = await _redis_figures(probe)
            await probe.aclose()
            read = (await _results([reader], grace=0))[0]["read"] if reader else []
        finally:
            await redis_server.kill()
        changes = sum(r["changes"] for r in results)
        rate = changes / max(r["seconds"] for r in results)
        out["variants"][name] = {
            "publishers": publishers,
            "batch": batch,
            "readers": readers,
            "changes": changes,
            "changes_per_second": rate,
            "redis_cpu_percent": redis_cpu,
            "redis_cpu_us_per_change": 1e4 * redis_cpu / rate,
            "per_core_ceiling_changes_per_second": rate / (redis_cpu / 100),
            "read_per_reader": read,
            "redis_after": figures,
            "redis_commands_per_change": _commands_since(commands_before, commands_after, changes),
        }
    out["load_average"].append(_load())
    return out


# -- the scenario -----------------------------------------------------------------------------


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
    keep_logs: Path | None = None,
) -> dict[str, Any]:
    """The four parts in turn; ``keep_logs``: a folder where every sidecar's log is kept."""
    logs: list[Sidecar] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        latency = await _added_latency(tmp, logs, list(latency_rates))
        scale, recovery, message = await _scale_and_recovery(
            tmp, logs, nodes=nodes, jobs_per_node=jobs_per_node, clients=clients,
            workers=workers, rate=rate, seconds=seconds,
        )  # fmt: skip
        throughput = await _throughput(
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
        log_report = _log_lines(logs)
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
            "sidecar_args": ["--log-level", "info", *LIMITS],
            "redis_server": _redis_version(),
        },
        "latency": latency,
        "scale": scale,
        "recovery": recovery,
        "redis_throughput": throughput,
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
        },
    }


def _redis_version() -> str:
    import subprocess

    binary = shutil.which("redis-server") or "redis-server"
    return subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()


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
        f"Redis: {r['used_memory_mb']:.1f} MB used, stream {r['stream_length']} entries, "
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
    for name, log in result["logs"].items():
        if log["unexpected"]:
            lines.append(f"{name}: {log['unexpected']} unexpected log lines, e.g.")
            lines += [f"  {line}" for line in log["unexpected_lines"][:3]]
    lines += [f"target {t}: {v}" for t, v in result["targets"].items()]
    return "\n".join(lines)


def _s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.2f} s"
