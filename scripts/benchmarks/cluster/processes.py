"""The cluster's processes: its redis-servers, its sidecars (nodes and gateways) and its load
workers; starting them, reading the workers' results, stopping them.

Redis is set up as in production (docs/cluster.md#acl-users): the default user has a password
(the benchmark's own reads and figures go through it), and every sidecar and load worker runs
as a Redis ACL user of its own, with the rules ``progress-sidecar redis-acl`` prints. The users
are saved in Redis' ACL file, so that a restarted Redis (recovery) has them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from support.acl_users import acl_user
from support.listening import NotListening, await_listening
from support.redis_server import RedisServer, RedisServerError

from benchmarks.common import BENCH, Server

if TYPE_CHECKING:  # Redis' client is the cluster extra's: imported when the scenario runs
    import redis.asyncio as aioredis

# Every load client connects from 127.0.0.1, many to one job: lift the per-job, per-address
# and total limits (defaults 10, 5 and 1,000) out of the way.
LIMITS = ("--max-clients-per-job", "10000", "--max-clients-per-address", "10000")
LIMITS += ("--max-clients", "12000")
REDIS_MISSING = "--cluster needs redis-server (apt-get install redis-server)"


async def start_redis(workdir: Path) -> RedisServer:
    """A redis-server of its own on 127.0.0.1, no persistence but its ACL file, its default user
    with a password, started (``support``'s: ``kill`` as a crash, ``start`` again brings up a
    new, empty one on the same port, with the users saved)."""
    if shutil.which("redis-server") is None:
        raise SystemExit(REDIS_MISSING)
    workdir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_hex(16)
    users = workdir / "users.acl"
    users.write_text(f"user default on >{password} ~* &* +@all\n")
    # Beside an ACL file Redis ignores requirepass: the file's default user carries the same
    # password, which ``server.url`` and ``redis_client`` use.
    server = RedisServer(workdir, password=password, extra_args=("--aclfile", str(users)))
    await start_again(server)
    return server


async def start_again(server: RedisServer) -> None:
    """``server.start()`` in a thread: the event loop goes on meanwhile (the recovery's polls)."""
    try:
        await asyncio.to_thread(server.start)
    except RedisServerError as e:
        raise SystemExit(str(e)) from None


async def kill_redis(server: RedisServer) -> None:
    await asyncio.to_thread(server.kill)


def redis_client(server: RedisServer) -> aioredis.Redis:
    """An asyncio client of ``server`` as its default user (every right: the benchmark's own)."""
    import redis.asyncio

    return redis.asyncio.Redis(
        host="127.0.0.1", port=server.port, password=server.password, socket_timeout=5
    )


def redis_version() -> str:
    binary = shutil.which("redis-server") or "redis-server"
    return subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()


@dataclass
class Sidecar(Server):
    name: str
    log: Path


async def sidecar_user(redis_server: RedisServer, root: Path | None, node: str) -> str:
    """The URL of a new Redis user named ``node``, for a node's sidecar (with ``root``) or a
    gateway's (without)."""
    role = ("node", node) if root is not None else ("gateway",)
    return await acl_user(redis_server, node, *role, save=True)


async def start_sidecar(
    logs: Path,
    name: str,
    redis_server: RedisServer,
    root: Path | None,
    node: str,
    *,
    user_url: str | None = None,
) -> Sidecar:
    """A sidecar on Redis (a node with ``root``, a gateway without) as a Redis user of its own,
    named ``node`` (``user_url``: made already, by ``sidecar_user``), its URL in
    ``SIDECAR_REDIS_URL`` as in production; its log in a file."""
    from sidecar.core.environment import REDIS_ENV

    where = ["--root", str(root)] if root is not None else []
    url = user_url or await sidecar_user(redis_server, root, node)
    env = {**os.environ, REDIS_ENV: url}
    log = logs / f"{name}.log"
    with open(log, "ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sidecar", *where, "--node", node,
            "--port", "0", "--log-level", "info", *LIMITS,
            stdout=asyncio.subprocess.PIPE, stderr=stderr, env=env,
        )  # fmt: skip
    try:
        listening = await await_listening(process, timeout=60, what=f"sidecar {name}")
    except NotListening as e:
        tail = log.read_text(errors="replace").splitlines()[-10:]
        raise SystemExit(f"{e}\nits log ends:\n" + "\n".join(tail)) from None
    return Sidecar(process, listening.url, name, log)


async def stop_sidecars(sidecars: list[Sidecar]) -> None:
    await asyncio.gather(*(s.stop() for s in sidecars), return_exceptions=True)


async def start_worker(spec: dict[str, Any]) -> asyncio.subprocess.Process:
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


async def until_ready(process: asyncio.subprocess.Process, timeout: float = 180) -> None:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout)
    assert line.strip() == b"ready", line


async def worker_results(
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
