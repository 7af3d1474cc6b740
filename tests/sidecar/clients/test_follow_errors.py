"""When the Python client stops or gives up: refusals, unknown jobs, sidecars gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from scripts.support.ports import free_port
from sidecar.clients.follow import FollowError, SidecarUnreachable, StreamError, follow_job
from sidecar.server.app import create_app
from sidecar.server.settings import Settings
from tests.conftest import StartSidecar
from tests.helpers import write_atomic


async def test_follow_raises_at_once_for_an_unknown_job(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """Without wait_for_job (the default), an unknown job is an error, not a wait."""
    sidecar = await start_sidecar()
    with pytest.raises(StreamError) as unknown:
        await asyncio.wait_for(anext(follow_job(sidecar.url("/"), "nope")), 5)
    assert (unknown.value.code, unknown.value.reason) == (4404, "unknown job")


async def test_follow_gives_up_when_nothing_listens() -> None:
    port = free_port()
    retries: list[int | None] = []
    started = time.monotonic()
    with pytest.raises(SidecarUnreachable) as unreachable:
        await asyncio.wait_for(
            anext(
                follow_job(
                    f"127.0.0.1:{port}",
                    "j",
                    give_up_after=0.5,
                    min_backoff=0.02,
                    max_backoff=0.1,
                    on_retry=lambda code, reason: retries.append(code),
                )
            ),
            10,
        )
    assert 0.5 <= time.monotonic() - started < 5
    assert len(retries) >= 2 and set(retries) == {None}  # it did retry, then gave up
    assert (unreachable.value.url, unreachable.value.reason) == (
        f"http://127.0.0.1:{port}",
        "connection refused",
    )
    assert str(unreachable.value) == f"cannot reach http://127.0.0.1:{port}: connection refused"


async def test_follow_gives_up_counting_from_the_drop(jobs_root: Path) -> None:
    """An idle stream longer than give_up_after, then a sidecar gone for good: it retries for
    give_up_after seconds from the drop, then raises."""
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running", "current_step": 1})
    port = free_port()
    server = TestServer(create_app(Settings(root=jobs_root)), host="127.0.0.1", port=port)
    await server.start_server()
    retries: list[int | None] = []
    stream = follow_job(
        f"http://127.0.0.1:{port}",
        "j",
        give_up_after=1.0,
        min_backoff=0.02,
        max_backoff=0.1,
        on_retry=lambda code, reason: retries.append(code),
    )
    try:
        assert (await anext(stream))["current_step"] == 1
        await asyncio.sleep(1.2)  # the stream is up and quiet for longer than give_up_after
        await server.close()
        dropped = time.monotonic()
        with pytest.raises(SidecarUnreachable) as unreachable:
            await asyncio.wait_for(anext(stream), 10)
        assert 1.0 <= time.monotonic() - dropped < 5
        assert len(retries) >= 2 and retries[-1] is None  # it did retry: refused
        assert unreachable.value.reason == "connection refused"
    finally:
        await stream.aclose()
        await server.close()


@pytest.fixture
async def answering() -> AsyncIterator[Any]:
    """A web server that answers the stream's route with a given status, or with a WebSocket
    that sends a given text: what a proxy or another program at the sidecar's URL may do."""
    servers: list[TestServer] = []

    async def start(status: int = 200, text: str | None = None) -> str:
        async def handler(request: web.Request) -> web.StreamResponse:
            if text is None:
                return web.Response(status=status, text="no")
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.send_str(text)
            await ws.close()
            return ws

        app = web.Application()
        app.router.add_get("/ws/training/{job_id}", handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        await server.close()


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (401, 4401, "unauthorized"),
        (403, 403, "forbidden: host or origin not allowed"),
        (404, 404, "not found: is {url} a progress-sidecar?"),
        (200, 200, "{url} is not a progress-sidecar: Invalid response status"),
    ],
)
async def test_follow_stops_at_a_refused_handshake(
    answering: Any, status: int, code: int, reason: str
) -> None:
    url = await answering(status)
    with pytest.raises(StreamError) as refused:
        await asyncio.wait_for(anext(follow_job(url, "j", min_backoff=0.02)), 5)
    assert (refused.value.code, refused.value.reason) == (code, reason.format(url=url))


async def test_follow_retries_a_server_error_then_gives_up(answering: Any) -> None:
    """A 5xx (a proxy whose sidecar restarts) is worth retrying, within give_up_after."""
    url = await answering(502)
    with pytest.raises(SidecarUnreachable) as unreachable:
        await asyncio.wait_for(
            anext(follow_job(url, "j", give_up_after=0.3, min_backoff=0.02, max_backoff=0.05)), 10
        )
    assert unreachable.value.reason == "http 502 Invalid response status"


async def test_follow_stops_at_a_stream_that_is_not_json(answering: Any) -> None:
    url = await answering(text="hello")
    with pytest.raises(FollowError) as refused:
        await asyncio.wait_for(anext(follow_job(url, "j")), 5)
    assert str(refused.value) == (
        "not a progress-sidecar stream: invalid json: Expecting value at line 1 column 1"
    )


async def test_follow_gives_up_on_refusals(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar()
    with pytest.raises(StreamError) as invalid:
        await anext(follow_job(sidecar.url("/"), "-bad"))
    assert (invalid.value.code, invalid.value.reason) == (4400, "invalid job id")
    with pytest.raises(StreamError) as unknown:
        await anext(follow_job(sidecar.url("/"), "nope", wait_for_job=False))
    assert unknown.value.code == 4404
