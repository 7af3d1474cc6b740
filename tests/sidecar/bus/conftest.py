"""Fixtures of the bus tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.redis_server import RedisServer
from tests.sidecar.bus.cluster import Cluster


@pytest.fixture
async def cluster(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Cluster]:
    async with aiohttp.ClientSession() as session:
        cluster = Cluster(redis_server, tmp_path, session)
        try:
            yield cluster
        finally:
            for sidecar in list(cluster.sidecars):
                await cluster.stop(sidecar)
