"""The cluster's load workers, each in a process of its own (``bench.py --cluster-worker
SPEC_FILE``): WebSocket clients on the ``websockets`` library, redis-py publishers writing what
a node writes, and stream readers as every sidecar reads; each Redis client as the ACL user its
spec's URL names."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


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
    """What node ``spec["node"]`` writes for each change of a job, ``batch`` changes per
    MULTI/EXEC, as fast as it goes for ``seconds`` (after 'go' on stdin); prints how many."""
    import redis

    from sidecar.bus import keys
    from sidecar.bus.defaults import RUNNING_TTL, STREAM_LENGTH

    client = redis.Redis.from_url(spec["url"])
    message = spec["message"].encode()
    jobs = [f"job{i:03d}" for i in range(spec["jobs"])]
    node = spec["node"]
    stream, jobs_hash = keys.changes_key(node), keys.jobs_key(node)
    print("ready", flush=True)
    sys.stdin.readline()
    changes, began = 0, time.monotonic()
    deadline = began + spec["seconds"]
    while time.monotonic() < deadline:
        with client.pipeline(transaction=True) as pipe:
            for _ in range(spec["batch"]):
                job = jobs[changes % len(jobs)]
                changes += 1
                pipe.xadd(stream, {keys.FIELD: message}, maxlen=STREAM_LENGTH)
                pipe.hset(jobs_hash, job, message)
                pipe.expire(keys.history_key(node, job), RUNNING_TTL)
                pipe.expire(keys.history_mark_key(node, job), RUNNING_TTL)
            pipe.execute()
    print(json.dumps({"changes": changes, "seconds": time.monotonic() - began}), flush=True)


async def _read_streams(spec: dict[str, Any]) -> None:
    """``readers`` clients following every node's stream (``spec["nodes"]``) as every sidecar
    does (one XREAD BLOCK of them all), until 'stop' on stdin; prints the entries each read."""
    from sidecar.bus import keys

    counts = [0] * spec["readers"]

    async def read(index: int) -> None:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(spec["url"])
        last: dict[Any, Any] = {keys.changes_key(node): "$" for node in spec["nodes"]}
        while True:
            reply: Any = await client.xread(last, count=1000, block=1000)
            for stream, entries in reply or ():
                counts[index] += len(entries)
                last[stream.decode()] = entries[-1][0]

    tasks = [asyncio.create_task(read(i)) for i in range(spec["readers"])]
    await asyncio.sleep(0.3)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"read": counts}), flush=True)


def worker(spec_file: str) -> None:
    """One load worker, of the kind its spec names: clients, publish or read."""
    path = Path(spec_file)
    spec = json.loads(path.read_text())
    path.unlink()
    if spec["kind"] == "clients":
        asyncio.run(_follow_all(spec["targets"]))
    elif spec["kind"] == "publish":
        _publish(spec)
    elif spec["kind"] == "read":
        asyncio.run(_read_streams(spec))
    else:
        raise SystemExit(f"unknown worker {spec['kind']!r}")
