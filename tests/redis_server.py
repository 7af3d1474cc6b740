"""A real ``redis-server`` for the cluster tests (``scripts.support.redis_server``'s, which the
demo and the benchmarks run too): skipped without one, failing under CI."""

from __future__ import annotations

import shutil
from pathlib import Path

import redis

from scripts.support import redis_server
from tests.helpers import unavailable

MISSING = (
    "redis-server is not installed (apt-get install redis-server); the cluster tests need a real "
    "one (.ci/run installs it)"
)


def require_redis_server() -> str:
    """The path of ``redis-server``; skips the test without it, or fails under CI."""
    path = shutil.which("redis-server")
    if path is None:
        unavailable(MISSING)
    return path


class RedisServer(redis_server.RedisServer):
    """The shared one on a free port of 127.0.0.1, and a client to look into it with; ``kill``
    it as a crash would, ``start`` brings up a new, empty one on the same port."""

    def __init__(self, workdir: Path, *, password: str | None = None) -> None:
        super().__init__(workdir, password=password, binary=require_redis_server())

    def client(self) -> redis.Redis:
        """A plain (blocking) client, for the tests to look into Redis."""
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password)
