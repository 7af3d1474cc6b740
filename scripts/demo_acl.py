"""The demo's Redis users: one per node and one for the gateway, each made from the rules
``progress-sidecar redis-acl`` prints (as docs/cluster.md sets a cluster up), with a password of
its own."""

from __future__ import annotations

import asyncio
import secrets
import sys

from support.redis_server import RedisServer


async def acl_user(server: RedisServer, user: str, *role: str) -> str:
    """Make ``user`` of ``role`` (``node NAME`` or ``gateway``) on ``server``; its URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "redis-acl", *role,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"progress-sidecar redis-acl {' '.join(role)}: {err.decode().strip()}")
    password = secrets.token_urlsafe(12)
    rules = out.decode().split()
    await asyncio.to_thread(_set_user, server, user, password, rules)
    return f"redis://{user}:{password}@127.0.0.1:{server.port}/0"


def _set_user(server: RedisServer, user: str, password: str, rules: list[str]) -> None:
    import redis  # the cluster extra, which the demo installs

    client = redis.Redis(host="127.0.0.1", port=server.port, password=server.password)
    try:
        client.execute_command("ACL", "SETUSER", user, "on", f">{password}", *rules)
    finally:
        client.close()
