"""Query strings and paths from clients are a boundary too (issue 20): whatever a client puts
in them, the answer is a refusal or a stream, never a 500 and never a traceback."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sidecar.server.app import create_app
from sidecar.server.settings import Settings
from tests.conftest import SidecarTestServer
from tests.helpers import write_atomic

# Any text, lone surrogates and percent-escapes of bytes that are not UTF-8 among it.
hostile = st.one_of(
    st.text(max_size=40),
    st.lists(st.integers(0, 255), max_size=12).map(lambda bs: "".join(f"%{b:02X}" for b in bs)),
    st.sampled_from(["%ED%A0%80", "%FF", "1:1", "e:99999999999999999999", "-1", "1e999", "\x00"]),
)


def _quote(text: str) -> str:
    return text if text.startswith("%") else urllib.parse.quote(text, safe="", errors="replace")


async def _ask(root: Path, paths: list[str]) -> list[int]:
    app = create_app(Settings(root=root))
    server = SidecarTestServer(app, host="127.0.0.1")
    await server.start_server()
    statuses = []
    try:
        async with aiohttp.ClientSession() as session:
            for path in paths:
                url = str(server.make_url("/")).rstrip("/") + path
                if path.startswith("/ws/"):
                    try:
                        ws = await session.ws_connect(url.replace("http", "ws", 1))
                    except aiohttp.WSServerHandshakeError as e:
                        statuses.append(e.status)
                        continue
                    message = await ws.receive(timeout=5)
                    if message.type == aiohttp.WSMsgType.TEXT:
                        json.loads(message.data)  # a real message: the job's snapshot
                    else:  # a refusal: one of the protocol's close codes, not 1011
                        assert ws.close_code in (4400, 4404), ws.close_code
                    statuses.append(101)
                    await ws.close()
                else:
                    async with session.get(url) as response:
                        await response.read()
                        statuses.append(response.status)
    finally:
        await server.close()
    return statuses


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(since=hostile, fmt=hostile, history=hostile, job=hostile, limit=hostile)
@example(since="%ED%A0%80:1", fmt="%FF", history="%ED%A0%80", job="%ED%A0%80", limit="%FF")
def test_any_query_string_is_refused_or_served(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    since: str,
    fmt: str,
    history: str,
    job: str,
    limit: str,
) -> None:
    write_atomic(tmp_path / "j1" / "progress.json", {"status": "running"})
    query = f"since={_quote(since)}&format={_quote(fmt)}&history={_quote(history)}"
    paths = [
        f"/ws/training/j1?{query}",
        f"/ws/training/{_quote(job)}",
        f"/api/jobs/{_quote(job)}",
        f"/api/jobs/{_quote(job)}/history",
        f"/api/jobs?limit={_quote(limit)}&status={_quote(fmt)}&after={_quote(job)}",
        f"/healthz?{_quote(job)}={_quote(since)}",
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        statuses = asyncio.run(_ask(tmp_path, paths))
    assert all(status < 500 for status in statuses), list(zip(paths, statuses, strict=True))
    assert not [r for r in caplog.records if r.exc_info], caplog.text
