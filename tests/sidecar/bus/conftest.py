"""Fixtures of the bus tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer
from tests.sidecar.bus.cluster import Cluster, running_cluster


@pytest.fixture
async def cluster(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(redis_server, tmp_path) as cluster:
        yield cluster
