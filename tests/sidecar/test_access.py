"""The token and the origins: who gets in, and that the token never reaches a log."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import pytest

from sidecar.access import origin_allowed, redact, token_matches
from sidecar.client import StreamError, follow_job
from tests.conftest import Sidecar, StartSidecar
from tests.helpers import write_atomic

TOKEN = "s3cr3t-t0ken-value"


@pytest.fixture
async def guarded(jobs_root: Path, start_sidecar: StartSidecar) -> Sidecar:
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running", "step": 1})
    return await start_sidecar(token=TOKEN)


async def status_of(sidecar: Sidecar, path: str, **kwargs: object) -> int:
    async with sidecar.session.get(sidecar.url(path), **kwargs) as response:  # type: ignore[arg-type]
        if response.status == 401:
            assert await response.json() == {"error": "unauthorized"}
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        return response.status


async def test_rest_needs_the_token(guarded: Sidecar) -> None:
    for path in ("/api/jobs", "/api/jobs/j", "/api/jobs/j/history", "/healthz"):
        assert await status_of(guarded, path) == 401
        assert await status_of(guarded, path, headers={"Authorization": "Bearer wrong"}) == 401
        assert await status_of(guarded, path, headers={"Authorization": f"Bearer {TOKEN}"}) == 200
        assert await status_of(guarded, f"{path}?token={TOKEN}") == 200
        assert await status_of(guarded, f"{path}?token={TOKEN}x") == 401


async def test_websocket_without_the_token_is_closed_with_4401(guarded: Sidecar) -> None:
    for url in (guarded.ws_url("j"), guarded.ws_url("j", "token=wrong")):
        async with guarded.session.ws_connect(url) as ws:
            message = await ws.receive(timeout=5)
            assert (message.data, message.extra) == (4401, "unauthorized")


@pytest.mark.parametrize("how", ["header", "query", "subprotocol"])
async def test_websocket_with_the_token(guarded: Sidecar, how: str) -> None:
    url, headers, protocols = guarded.ws_url("j"), {}, ()
    if how == "header":
        headers = {"Authorization": f"Bearer {TOKEN}"}
    elif how == "query":
        url = guarded.ws_url("j", f"token={TOKEN}")
    else:
        protocols = ("bearer", TOKEN)
    async with guarded.session.ws_connect(url, headers=headers, protocols=protocols) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
        if how == "subprotocol":
            assert (
                ws.protocol == "bearer"
            )  # browsers fail a connection whose protocol is not echoed


async def test_python_client_with_and_without_the_token(guarded: Sidecar) -> None:
    state = await anext(follow_job(guarded.url("/"), "j", token=TOKEN))
    assert state["step"] == 1
    with pytest.raises(StreamError) as refused:
        await anext(follow_job(guarded.url("/"), "j"))
    assert refused.value.code == 4401


async def test_foreign_origins_are_refused_before_the_upgrade(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running"})
    sidecar = await start_sidecar()
    own = f"http://{sidecar.server.host}:{sidecar.server.port}"
    evil = {"Origin": "http://evil.example"}
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await sidecar.session.ws_connect(sidecar.ws_url("j"), headers=evil)
    assert refused.value.status == 403
    async with sidecar.session.get(sidecar.url("/api/jobs"), headers=evil) as response:
        assert (response.status, await response.json()) == (403, {"error": "origin not allowed"})
    async with sidecar.session.ws_connect(sidecar.ws_url("j"), headers={"Origin": own}) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
    async with sidecar.session.ws_connect(sidecar.ws_url("j")) as ws:  # no Origin: not a browser
        assert (await ws.receive_json(timeout=5))["type"] == "snapshot"


async def test_allowed_origin_gets_cors(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running"})
    sidecar = await start_sidecar(token=TOKEN, allowed_origins=("http://localhost:3000",))
    frontend = {"Origin": "http://localhost:3000"}
    preflight = {
        **frontend,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    async with sidecar.session.options(sidecar.url("/api/jobs"), headers=preflight) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    headers = {**frontend, "Authorization": f"Bearer {TOKEN}"}
    async with sidecar.session.get(sidecar.url("/api/jobs"), headers=headers) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
        assert response.headers["Vary"] == "Origin"
    async with sidecar.session.get(sidecar.url("/api/jobs"), headers=frontend) as response:
        assert response.status == 401  # readable by the page: it carries the CORS header
        assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    other = {"Origin": "http://localhost:4000", "Access-Control-Request-Method": "GET"}
    async with sidecar.session.options(sidecar.url("/api/jobs"), headers=other) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers
    async with sidecar.session.ws_connect(
        sidecar.ws_url("j", f"token={TOKEN}"), headers=frontend
    ) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "snapshot"


async def test_star_allows_any_origin(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(allowed_origins=("*",))
    async with sidecar.session.get(
        sidecar.url("/healthz"), headers={"Origin": "https://anything.example"}
    ) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "https://anything.example"


def test_pure_rules() -> None:
    assert (
        token_matches("abc", "abc")
        and not token_matches("abd", "abc")
        and not token_matches(None, "abc")
    )
    assert not token_matches("ab", "abc")
    own = "http://127.0.0.1:8765"
    assert origin_allowed("http://127.0.0.1:8765", own=own, allowed=frozenset())
    assert origin_allowed(
        "HTTP://LOCALHOST:3000", own=own, allowed=frozenset({"http://localhost:3000"})
    )
    assert not origin_allowed(
        "http://localhost:3001", own=own, allowed=frozenset({"http://localhost:3000"})
    )
    assert (
        redact("/ws/training/j?history=1&token=abc&x=1") == "/ws/training/j?history=1&token=***&x=1"
    )
    assert redact("/api/jobs?token=abc") == "/api/jobs?token=***"


async def test_the_token_never_reaches_a_log(tmp_path: Path) -> None:
    write_atomic(tmp_path / "j" / "progress.json", {"status": "running"})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "--root", str(tmp_path), "--port", "0", "--log-level", "debug",
        env={"SIDECAR_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    url = (
        (await asyncio.wait_for(process.stdout.readline(), 20))
        .decode()
        .split("listening on ")[1]
        .split()[0]
    )
    async with aiohttp.ClientSession() as session:
        for query in (f"?token={TOKEN}", "?token=wrong", ""):
            async with session.get(f"{url}/api/jobs{query}") as response:
                await response.read()
        async with session.get(
            f"{url}/api/jobs", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as response:
            assert response.status == 200
        ws_url = url.replace("http", "ws") + "/ws/training/j"
        for kwargs in ({"protocols": ("bearer", TOKEN)}, {"protocols": ("bearer", "wrong")}):
            async with session.ws_connect(ws_url, **kwargs) as ws:  # type: ignore[arg-type]
                await ws.receive(timeout=5)
        async with session.ws_connect(ws_url + f"?token={TOKEN}") as ws:
            await ws.receive(timeout=5)
    process.terminate()
    out, err = await asyncio.wait_for(process.communicate(), 10)
    log = (out + err).decode()
    assert '"GET /api/jobs?token=***" 200' in log  # the access log is on, and redacts
    assert TOKEN not in log
