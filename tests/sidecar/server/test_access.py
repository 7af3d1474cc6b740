"""The token and the origins: who gets in, and that the token never reaches a log."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import aiohttp
import pytest

from scripts.support.listening import await_listening
from sidecar.clients.follow import StreamError, follow_job
from sidecar.server import dashboard
from sidecar.server.access import AccessPolicy, host_name, token_matches
from tests.conftest import Sidecar, StartSidecar
from tests.helpers import UPGRADE_HEADERS, raw_get, write_atomic

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
    assert [host_name(h) for h in ("localhost:80", "[::1]:8765", "Example.COM.", "::1")] == [
        "localhost",
        "::1",
        "example.com",
        "::1",
    ]
    loopback = AccessPolicy.of(
        token=None, allowed_origins=["http://localhost:3000"], allowed_hosts=[], listen_host="::1"
    )
    own = "http://127.0.0.1:8765"
    assert loopback.origin_allowed("http://127.0.0.1:8765", own=own)
    assert loopback.origin_allowed("HTTP://LOCALHOST:3000", own=own)
    assert not loopback.origin_allowed("http://localhost:3001", own=own)
    assert loopback.host_allowed("127.0.0.2:8765") and loopback.host_allowed("[::1]")
    assert not loopback.host_allowed("evil.example:8765")
    assert not loopback.origin_allowed("http://evil.example:8765", own="http://evil.example:8765")
    public = AccessPolicy.of(
        token=None, allowed_origins=[], allowed_hosts=[], listen_host="0.0.0.0"
    )
    assert public.host_allowed("train.example:8765")
    named = AccessPolicy.of(
        token=None, allowed_origins=[], allowed_hosts=["Train.Example"], listen_host="0.0.0.0"
    )
    assert named.host_allowed("train.example:8765") and named.host_allowed("localhost")
    assert not named.host_allowed("evil.example")


async def test_the_token_never_reaches_a_log(tmp_path: Path) -> None:
    write_atomic(tmp_path / "j" / "progress.json", {"status": "running"})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "--root", str(tmp_path), "--port", "0", "--log-level", "debug",
        env={"SIDECAR_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    url = (await await_listening(process, timeout=20, what="the sidecar")).url
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


def sample_paths(sidecar: Sidecar) -> dict[str, bool]:
    """A path for each route of the app (its parameters filled in), and whether it is public."""
    paths: dict[str, bool] = {}
    for route in sidecar.app.router.routes():
        assert route.resource is not None
        public = route.handler is dashboard.static_file
        fill = "progress-client.js" if public else "j"
        paths[re.sub(r"\{[^}]+\}", fill, route.resource.canonical)] = public
    return paths


async def test_every_route_needs_the_token_whatever_the_headers(guarded: Sidecar) -> None:
    """One decision for every route: no header (an upgrade among them) skips the token, and
    a route added later is covered because the test walks the app's routes."""
    host, port = guarded.server.host, guarded.server.port
    paths = sample_paths(guarded)
    assert {"/", "/api/jobs", "/api/jobs/j", "/api/jobs/j/history", "/healthz", "/metrics"} | {
        "/ws/training/j",
        "/ws/jobs",
        "/static/progress-client.js",
    } <= set(paths)
    without = ({}, {"Authorization": "Bearer wrong"}, {"Sec-WebSocket-Protocol": "bearer, wrong"})
    for path, public in paths.items():
        for upgrade in ({}, UPGRADE_HEADERS):
            for headers in without:
                got = await raw_get(host, port, path, {**upgrade, **headers})
                what = f"{path} with {upgrade | headers}"
                if public:
                    assert got.status == 200, what
                elif got.status == 101:  # a WebSocket route: refused after the handshake
                    assert path.startswith("/ws/") and upgrade, what
                    assert (got.close_code, got.body[2:]) == (4401, b"unauthorized"), what
                else:
                    assert got.status == 401, what
                    assert TOKEN.encode() not in got.body and b'"jobs"' not in got.body, what
            for target in (f"{path}?token={TOKEN}", path):
                auth = {} if "?" in target else {"Authorization": f"Bearer {TOKEN}"}
                got = await raw_get(host, port, target, {**upgrade, **auth})
                expected = 101 if upgrade and path.startswith("/ws/") else 200
                if upgrade and not path.startswith("/ws/"):
                    expected = 200  # an upgrade header on a plain route changes nothing
                if not upgrade and path.startswith("/ws/"):
                    expected = 400  # a WebSocket route asked without the upgrade
                assert got.status == expected, f"{target} with {upgrade | auth}: {got.status}"


async def test_unknown_paths_need_the_token_too(guarded: Sidecar) -> None:
    host, port = guarded.server.host, guarded.server.port
    assert (await raw_get(host, port, "/nothing/here", UPGRADE_HEADERS)).status == 401
    assert (await raw_get(host, port, f"/nothing/here?token={TOKEN}")).status == 404


@pytest.mark.parametrize("path", ["/api/jobs", "/ws/training/j", "/", "/healthz"])
async def test_dns_rebinding_is_refused_on_loopback(
    jobs_root: Path, start_sidecar: StartSidecar, path: str
) -> None:
    """A page at http://evil.example:PORT whose name resolves to 127.0.0.1 is its own origin
    by the Host it sends; on a loopback listener that Host is refused before anything else."""
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running"})
    sidecar = await start_sidecar()
    host, port = sidecar.server.host, sidecar.server.port
    upgrade = UPGRADE_HEADERS if path.startswith("/ws/") else {}
    evil = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}", **upgrade}
    got = await raw_get(host, port, path, evil)
    assert got.status == 403 and b"host not allowed" in got.body
    got = await raw_get(host, port, path, {**evil, "Origin": f"http://localhost:{port}"})
    assert got.status == 403
    for name in ("localhost", "127.0.0.1", "[::1]"):
        own = {"Host": f"{name}:{port}", "Origin": f"http://{name}:{port}", **upgrade}
        assert (await raw_get(host, port, path, own)).status == (101 if upgrade else 200)


async def test_allowed_host_lets_a_name_in(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    """Behind a reverse proxy that passes its own name as Host, --allowed-host names it."""
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running"})
    sidecar = await start_sidecar(allowed_hosts=("train.example",))
    host, port = sidecar.server.host, sidecar.server.port
    page = {"Host": "train.example", "Origin": "http://train.example"}
    assert (await raw_get(host, port, "/api/jobs/j", page)).status == 200
    got = await raw_get(host, port, "/ws/training/j", {**page, **UPGRADE_HEADERS})
    assert got.status == 101
    assert (await raw_get(host, port, "/api/jobs/j", {"Host": "other.example"})).status == 403


async def test_a_public_listener_takes_any_host(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """Listening beyond loopback without --allowed-host, the Host is not checked (documented:
    such a sidecar wants --token, or --allowed-host)."""
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running"})
    sidecar = await start_sidecar(host="0.0.0.0")
    got = await raw_get(sidecar.server.host, sidecar.server.port, "/api/jobs/j", {"Host": "x.y"})
    assert got.status == 200
