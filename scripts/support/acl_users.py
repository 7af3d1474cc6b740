"""Redis ACL users as docs/cluster.md makes them: the rules ``progress-sidecar redis-acl ROLE``
prints, and a random password (the demo's cluster, the cluster benchmark)."""

from __future__ import annotations

import asyncio
import secrets
import sys

from .redis_server import RedisServer


async def acl_user(server: RedisServer, user: str, *role: str, save: bool = False) -> str:
    """Make ``user`` of ``role`` (``"node", NAME`` or ``"gateway"``) on ``server``, through its
    default user; ``save``: into its ACL file too. Returns the user's URL.

    Raises:
        SystemExit: ``redis-acl`` refused the role (one line).
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "redis-acl", *role,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"progress-sidecar redis-acl {' '.join(role)}: {err.decode().strip()}")
    import redis.asyncio as aioredis  # the cluster extra, which the demo and benchmark install

    password = secrets.token_hex(16)
    client = aioredis.Redis(host="127.0.0.1", port=server.port, password=server.password)
    try:
        await client.execute_command("ACL", "SETUSER", user, "on", f">{password}", *out.split())
        if save:
            await client.execute_command("ACL", "SAVE")
    finally:
        await client.aclose()
    return f"redis://{user}:{password}@127.0.0.1:{server.port}/0"
