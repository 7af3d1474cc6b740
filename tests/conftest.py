from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import settings

from sidecar.server.app import create_app
from sidecar.server.runner import SidecarRunner
from sidecar.server.settings import Settings
from tests.helpers import StreamClient
from tests.redis_server import RedisServer

# Examples are timed by hypothesis; on a busy machine that is noise, not a failure.
settings.register_profile("project", deadline=None)
settings.load_profile("project")


@pytest.fixture
def jobs_root(tmp_path: Path) -> Path:
    root = tmp_path / "jobs"
    root.mkdir()
    return root


class SidecarTestServer(TestServer):
    """aiohttp's test server, with the sidecar's own runner (its connection limits)."""

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return SidecarRunner(self.app, **kwargs)


class Sidecar:
    """A sidecar running in this process on a real socket, and clients for it."""

    def __init__(
        self, server: SidecarTestServer, session: aiohttp.ClientSession, stack: AsyncExitStack
    ) -> None:
        self.server = server
        self.session = session
        self._stack = stack

    @property
    def app(self) -> Any:
        return self.server.app

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def ws_url(self, job_id: str, query: str = "") -> str:
        url = self.url(f"/ws/training/{job_id}").replace("http://", "ws://", 1)
        return f"{url}?{query}" if query else url

    async def connect(self, job_id: str, query: str = "") -> StreamClient:
        ws = await self._stack.enter_async_context(
            self.session.ws_connect(self.ws_url(job_id, query), autoclose=False)
        )
        return StreamClient(ws)

    async def get_json(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.url(path)) as response:
            return response.status, await response.json()


StartSidecar = Callable[..., Awaitable[Sidecar]]


@pytest.fixture
async def start_sidecar(jobs_root: Path) -> AsyncIterator[StartSidecar]:
    """Start a sidecar on 127.0.0.1 with a free port; keywords override ``Settings``."""
    async with AsyncExitStack() as stack:

        async def start(root: Path | None = None, **overrides: Any) -> Sidecar:
            settings = Settings(root=root or jobs_root, **overrides)
            server = SidecarTestServer(create_app(settings), host="127.0.0.1")
            await server.start_server()
            stack.push_async_callback(server.close)
            session = await stack.enter_async_context(aiohttp.ClientSession())
            return Sidecar(server, session, stack)

        yield start


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free port (skipped without one, failing under CI)."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
