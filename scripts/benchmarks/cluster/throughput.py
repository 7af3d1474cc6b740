"""Part 4, Redis alone: the changes per second one redis-server takes from redis-py publishers
writing what a node writes for a change (XADD to its stream, HSET of its jobs hash, 2 EXPIRE, in
MULTI/EXEC), each as a node's ACL user, with the real message size, with and without stream
readers (a gateway's ACL user, reading every publisher's stream) beside them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.acl_users import acl_user

from benchmarks.cluster.measure import command_stats, commands_since, load_average, redis_figures
from benchmarks.cluster.processes import (
    kill_redis,
    redis_client,
    start_redis,
    start_worker,
    until_ready,
    worker_results,
)
from benchmarks.common import CpuMeter


async def redis_throughput(
    tmp: Path, message: bytes, seconds: float, variants: list[tuple[str, int, int, int]]
) -> dict[str, Any]:
    """changes/s of ``publishers`` redis-py processes (a node each), ``batch`` changes per
    transaction, with ``readers`` stream readers, against a fresh redis-server each time."""
    out: dict[str, Any] = {"message_bytes": len(message), "seconds": seconds, "variants": {}}
    out["load_average"] = [load_average()]
    for name, publishers, batch, readers in variants:
        redis_server = await start_redis(tmp / f"redis-throughput-{len(out['variants'])}")
        processes = []
        try:
            nodes = [f"bench{index}" for index in range(publishers)]
            reader = None
            if readers:
                url = await acl_user(redis_server, "reader", "gateway", save=True)
                spec = {"kind": "read", "url": url, "readers": readers, "nodes": nodes}
                reader = await start_worker(spec)
                await until_ready(reader)
            spec = {"kind": "publish", "message": message.decode()}
            spec.update(batch=batch, seconds=seconds, jobs=300)
            for node in nodes:
                url = await acl_user(redis_server, node, "node", node, save=True)
                processes.append(await start_worker({**spec, "node": node, "url": url}))
            for process in processes:
                await until_ready(process)
            probe = redis_client(redis_server)
            commands_before = await command_stats(probe)
            meter = CpuMeter(redis_server.pid)
            for process in processes:
                assert process.stdin is not None
                process.stdin.write(b"go\n")
            results = await worker_results(processes, grace=seconds + 30)
            redis_cpu = meter.percent()
            commands_after = await command_stats(probe)
            figures = await redis_figures(probe)
            await probe.aclose()
            read = (await worker_results([reader], grace=0))[0]["read"] if reader else []
        finally:
            await kill_redis(redis_server)
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
            "redis_commands_per_change": commands_since(commands_before, commands_after, changes),
        }
    out["load_average"].append(load_average())
    return out
